"""HTTP to upstream providers: one pooled client, retries that are safe for streams, an incremental SSE parser.

Why one client: every provider of a process shares one `httpx.AsyncClient`, so keep-alive connections
are reused across requests and providers (a TLS handshake per call would dominate short requests).
Per-provider read timeouts are passed per request. Why retries live here: 429s and 5xx from busy
upstreams are routine; retrying before anything reached our client is invisible to it, retrying after
a stream began delivering bytes would duplicate output, so `send_with_retries` only ever retries
before it hands a response back.
"""
from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import AsyncIterator

import httpx

from app.inference.base import UpstreamError

CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 600.0

# Network failures worth another attempt. Not ReadTimeout: the upstream was merely slow, and waiting
# another full read timeout rarely helps the caller who is already waiting.
RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)

# Response headers that describe our hop to the upstream, not the payload (httpx decodes the body,
# so content-encoding/length no longer apply).
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization", "set-cookie", "date", "server", "alt-svc", "via",
})


def timeout(read: float | None = DEFAULT_READ_TIMEOUT) -> httpx.Timeout:
    return httpx.Timeout(connect=CONNECT_TIMEOUT, read=read, write=60.0, pool=60.0)


class _NullJar(CookieJar):
    def set_cookie(self, cookie) -> None:
        pass

    def extract_cookies(self, response, request) -> None:
        pass


class _NoCookies(httpx.Cookies):
    """Cookies that keep nothing (and skip httpx's parsing of each response for them)."""

    def __init__(self) -> None:
        super().__init__(_NullJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _CookielessClient(httpx.AsyncClient):
    """An httpx client without a cookie jar. Why: the client is shared by every tenant and provider, so
    a jar would send one upstream's Set-Cookie back on everyone's later requests (Set-Cookie is not passed
    to clients, nor their Cookie header upstream); and httpx parses every response for cookies through
    urllib's cookiejar, ~5 % of a relayed request's CPU."""

    _no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, value) -> None:
        pass  # httpx's __init__ assigns `_cookies` directly; nothing else sets this


def new_client(read_timeout: float | None = DEFAULT_READ_TIMEOUT) -> httpx.AsyncClient:
    """The process's upstream client (the router owns it and closes it). HTTP/1.1 keep-alive with a
    pool large enough for many concurrent streams; no cookie jar."""
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256, keepalive_expiry=60.0)
    return _CookielessClient(timeout=timeout(read_timeout), limits=limits, follow_redirects=False, trust_env=False)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # first try included
    base_delay: float = 0.5  # seconds, doubled per attempt, with jitter
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # an upstream asking for a longer wait gets its error passed on instead


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the upstream asked us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    if (value := headers.get("retry-after")) is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                return max(email.utils.parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                return None
    return None


def backoff(attempt: int, policy: RetryPolicy) -> float:
    """Exponential with jitter: the n-th retry waits 75-100 % of base * 2**(n-1), capped."""
    return min(policy.base_delay * 2 ** (attempt - 1), policy.max_delay) * (1 - 0.25 * random.random())


async def send_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    stream: bool = False,
    timeout: httpx.Timeout | None = None,
    retry: RetryPolicy = RetryPolicy(),
) -> httpx.Response:
    """Sends until a response that is not worth retrying, or attempts run out, and returns it — an error
    status included (the caller maps it). With `stream=True` the body is unread: the caller iterates it
    and must `aclose()` it; nothing is retried from then on. Network errors of the last attempt raise."""
    attempt = 0
    while True:
        attempt += 1
        request = client.build_request(method, url, headers=headers, content=content, timeout=timeout)
        try:
            response = await client.send(request, stream=stream)
        except RETRYABLE_ERRORS:
            if attempt >= retry.max_attempts:
                raise
            await asyncio.sleep(backoff(attempt, retry))
            continue
        if attempt >= retry.max_attempts or not _should_retry(response):
            return response
        wait = retry_after(response.headers)
        if wait is not None and wait > retry.max_retry_after:
            return response
        try:
            await response.aread()  # a small error body: reading it keeps the connection reusable
        except httpx.HTTPError:
            pass
        await response.aclose()
        await asyncio.sleep(backoff(attempt, retry) if wait is None else wait)


def _should_retry(response: httpx.Response) -> bool:
    hint = response.headers.get("x-should-retry")  # OpenAI's and Anthropic's explicit hint
    if hint in ("true", "false"):
        return hint == "true"
    return is_retryable_status(response.status_code)


async def iter_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str, str]]:
    """Server-sent events as (event name, data) while the bytes arrive: per the SSE spec, lines end in
    LF, CRLF or CR, `data` lines join with LF, comments and `id`/`retry` are skipped, the name
    defaults to "message". A last event missing its blank line is still delivered."""
    buffer = b""
    event, data = "", []
    pending_cr = False  # a chunk ended in CR: a following LF belongs to the same line ending
    async for chunk in chunks:
        if pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        pending_cr = chunk.endswith(b"\r")
        buffer += chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            if not raw:
                if data:
                    yield event or "message", "\n".join(data)
                event, data = "", []
                continue
            line = raw.decode("utf-8", errors="replace")
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if buffer.strip():
        line = buffer.decode("utf-8", errors="replace")
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
    if data:
        yield event or "message", "\n".join(data)


def response_headers(headers: httpx.Headers) -> dict[str, str]:
    """The upstream's headers worth passing on (content type, request ids, rate limits, retry hints)."""
    return {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}


def request_headers(headers: dict[str, str] | None, *, drop: tuple[str, ...] = ()) -> dict[str, str]:
    """A client's request headers fit to forward: no credentials (the provider adds its own), no framing."""
    skip = {"authorization", "x-api-key", "x-goog-api-key", "host", "content-length", "cookie", "accept-encoding", *HOP_HEADERS, *drop}
    return {k.lower(): v for k, v in (headers or {}).items() if k.lower() not in skip}


# ---- errors ----

def openai_error_body(status: int, message: str, code: str | None = None) -> dict:
    kind = "server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error"
    code = code or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_text(body: object, default: str) -> str:
    """The message of an error body in any of the three protocols (or of plain text)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return body["message"]
    if isinstance(body, str) and body.strip():
        return body.strip()[:2000]
    return default


def upstream_error(status: int, openai_body: dict, headers: dict[str, str] | None, native: tuple[int, object]) -> UpstreamError:
    """An UpstreamError in OpenAI's shape that also keeps the upstream's own (status, body) as `native`,
    for endpoints speaking the upstream's protocol."""
    error = UpstreamError(status, openai_body, headers)
    error.native = native
    return error
