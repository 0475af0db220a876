"""The base of the absolute links this server hands out (image URLs, a Message Batch's `results_url`).

A client's `Host` and `X-Forwarded-*` headers are its own to write, so they are not taken at their word:
`UNDERSTUDY_PUBLIC_URL` when set; else the connection's scheme (http or https, nothing else) and the
`Host` header when it is a well-formed host[:port], else the address the server listens on. Forwarded
headers count only with `UNDERSTUDY_TRUST_FORWARDED=1` (behind a proxy that sets them), and then only
an http/https scheme and a well-formed host.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from litestar import Request

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_SCHEMES = ("http", "https")


def check_public_url(url: str) -> str:
    """The configured public URL without a trailing slash; a ValueError when it is not an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.netloc or not _HOST.fullmatch(parts.netloc) or parts.query or parts.fragment:
        raise ValueError(f"UNDERSTUDY_PUBLIC_URL must be an http:// or https:// URL such as https://llm.example.com, not {url!r}")
    return url.rstrip("/")


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def public_base_url(request: Request) -> str:
    settings = request.app.state.platform.settings
    if settings.public_url:
        return check_public_url(settings.public_url)
    scheme, host = request.scope.get("scheme"), _first(request.headers.get("host"))
    if settings.trust_forwarded:
        proto, forwarded_host = _first(request.headers.get("x-forwarded-proto")).lower(), _first(request.headers.get("x-forwarded-host"))
        scheme = proto if proto in _SCHEMES else scheme
        host = forwarded_host if _HOST.fullmatch(forwarded_host) else host
    if scheme not in _SCHEMES:
        scheme = "http"
    if not _HOST.fullmatch(host):
        address, port = (request.scope.get("server") or ("127.0.0.1", None))[:2]
        address = f"[{address}]" if ":" in str(address) else address
        host = f"{address}:{port}" if port else str(address)
    return f"{scheme}://{host}"
