"""Secrets kept out of the logs: a query parameter that carries a key (Gemini's `?key=`, `api_key=`…) is
written as `[redacted]` wherever a logged message holds a URL, the access log first of all."""
from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

_SECRET_NAMES = {"key", "api_key", "api-key", "apikey", "x-goog-api-key", "access_token", "token"}
_PAIR = re.compile(r"(?<=[?&;])([^=&;#\s\"'?]+)=([^&;#\s\"']*)")


def _pair(match: re.Match) -> str:
    return f"{match.group(1)}=[redacted]" if unquote_plus(match.group(1)).strip().lower() in _SECRET_NAMES else match.group(0)


def redact_url(text: str) -> str:
    """`text` with the value of every secret-bearing query parameter replaced (names compared decoded)."""
    return _PAIR.sub(_pair, text) if "=" in text else text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else None
            if args is not None:
                record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in args)
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


_FILTER = RedactSecrets()


def install() -> None:
    """On the loggers that write URLs: uvicorn's access and error logs (idempotent: once per process)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
