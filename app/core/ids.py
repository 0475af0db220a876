"""OpenAI-style prefixed ids: random, URL-safe, unguessable (so one tenant cannot probe another's)."""
from __future__ import annotations

import os
import string
import threading

from app.core.errors import invalid_request

_ALPHABET = string.ascii_letters + string.digits
_UNBIASED = 248  # 4 * 62: bytes below it map evenly onto the alphabet
_POOL_BYTES = 8192


class _Randomness:
    """The system's randomness (os.urandom, as `secrets` reads it), fetched 8 KiB at a time: every
    response gets a request id and most creates an object id, and a system call each cost more than
    the rest of making the id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # ids are also made in worker threads
        self.reset()

    def reset(self) -> None:
        self._pool, self._at = b"", 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._pool):
                self._pool, self._at = os.urandom(max(_POOL_BYTES, n)), 0
            self._at += n
            return self._pool[self._at - n:self._at]


_random = _Randomness()
os.register_at_fork(after_in_child=_random.reset)  # a forked process must never repeat its parent's ids


# Random bytes to id characters in one C call: bytes >= _UNBIASED are dropped, the rest map evenly.
_TO_CHAR = bytes(ord(_ALPHABET[b % 62]) if b < _UNBIASED else 0 for b in range(256))
_BIASED = bytes(range(_UNBIASED, 256))


def new_id(prefix: str, length: int = 24) -> str:
    """`new_id("file-")` -> "file-3sW9k…". The prefix carries its own separator, as OpenAI's do."""
    chars = b""
    while len(chars) < length:
        chars += _random.take(length + 4).translate(_TO_CHAR, _BIASED)
    return prefix + chars[:length].decode("ascii")


def request_id() -> str:
    return "req_" + _random.take(16).hex()


def check_prefix(object_id, prefix: str, param: str) -> None:
    """OpenAI checks an id's shape before looking it up: "Invalid 'conversation': 'abc'. Expected an ID that
    begins with 'conv'." (400); a well-shaped unknown id is still the resource's 404."""
    if isinstance(object_id, str) and not object_id.startswith(prefix):
        raise invalid_request(f"Invalid '{param}': '{object_id}'. Expected an ID that begins with '{prefix.rstrip('_-')}'.",
                              param=param, code="invalid_value")
