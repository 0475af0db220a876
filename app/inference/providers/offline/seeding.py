"""Where the offline model's determinism comes from: one hash of the request.

Same request → same output, so the seed is a hash of the canonical JSON of the request, leaving out
what does not change the answer (transport and bookkeeping fields). Everything random downstream draws
from `random.Random` instances derived from that hash plus a label, so adding a draw in one place does
not shift the values drawn in another.
"""
from __future__ import annotations

import hashlib
import json
import random
import string
from typing import Any

# Fields that change how or where an answer is delivered or recorded, never what it says; and those that
# only cut or observe the answer (a real model's output under `max_tokens` or `stop` is a prefix of the
# uncut one, and asking for logprobs or more choices does not change choice 0).
IGNORED_FIELDS = frozenset(
    {
        "stream", "stream_options", "user", "metadata", "store", "safety_identifier", "prompt_cache_key",
        "max_tokens", "max_completion_tokens", "stop", "logprobs", "top_logprobs", "n", "best_of", "echo",
    }
)
_ALPHABET = string.ascii_letters + string.digits


def canonical_json(params: dict, ignored: frozenset[str] = IGNORED_FIELDS) -> str:
    """The request's JSON, keys sorted; anything not JSON as its str(). No Python recursion: a request
    nests as deep as the JSON decoder allows (about a thousand levels)."""
    return json.dumps({str(k): v for k, v in params.items() if k not in ignored}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)


def request_seed(params: dict, kind: str) -> int:
    """A 64-bit seed for `params`; `kind` keeps a chat and a completion of the same fields apart."""
    digest = hashlib.sha256(f"{kind}\x00{canonical_json(params)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def derive(seed: int, *labels: Any) -> int:
    text = "\x00".join([str(seed), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def rng(seed: int, *labels: Any) -> random.Random:
    return random.Random(derive(seed, *labels))


def stable_id(prefix: str, seed: int, *labels: Any, length: int = 24) -> str:
    """A deterministic id (tool call ids), so the whole output of a request repeats."""
    r = rng(seed, "id", *labels)
    return prefix + "".join(r.choice(_ALPHABET) for _ in range(length))
