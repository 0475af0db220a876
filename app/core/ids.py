"""OpenAI-style prefixed ids: random, URL-safe, unguessable (so one tenant cannot probe another's)."""
from __future__ import annotations

import secrets
import string

from app.core.errors import invalid_request

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


def check_prefix(object_id, prefix: str, param: str) -> None:
    """OpenAI checks an id's shape before looking it up: "Invalid 'conversation': 'abc'. Expected an ID that
    begins with 'conv'." (400); a well-shaped unknown id is still the resource's 404."""
    if isinstance(object_id, str) and not object_id.startswith(prefix):
        raise invalid_request(f"Invalid '{param}': '{object_id}'. Expected an ID that begins with '{prefix.rstrip('_-')}'.",
                              param=param, code="invalid_value")
