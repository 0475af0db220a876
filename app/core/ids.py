"""OpenAI-style prefixed ids: random, URL-safe, unguessable (so one tenant cannot probe another's)."""
from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """`new_id("file-")` -> "file-3sW9k…". The prefix carries its own separator, as OpenAI's do."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def request_id() -> str:
    return "req_" + secrets.token_hex(16)
