"""OpenAI-style prefixed ids: random, URL-safe, unguessable (so one tenant cannot probe another's)."""
from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


_UNBIASED = 248  # 4 * 62: bytes below it map evenly onto the alphabet


def new_id(prefix: str, length: int = 24) -> str:
    """`new_id("file-")` -> "file-3sW9k…". The prefix carries its own separator, as OpenAI's do.
    One read of the system's randomness per id (not one per character)."""
    chars: list[str] = []
    while len(chars) < length:
        chars += [_ALPHABET[b % 62] for b in secrets.token_bytes(length + 4) if b < _UNBIASED]
    return prefix + "".join(chars[:length])


def request_id() -> str:
    return "req_" + secrets.token_hex(16)
