"""HTTP to upstream providers: one pooled client, retries that are safe for streams, an incremental SSE parser.

Why one client: every provider of a process shares one aiohttp session, so keep-alive connections
are reused across requests and providers (a TLS handshake per call would dominate short requests).
Per-provider read timeouts are passed per request. Why retries live here: 429s and 5xx from busy
upstreams are routine; retrying before anything reached our client is invisible to it, retrying after
a stream began delivering bytes would duplicate output, so `send_with_retries` only ever retries
before it hands a response back.

Why aiohttp (not httpx, which the SDKs use): a relayed stream is the hot path. aiohttp parses HTTP in C
(llhttp) and hands over everything received so far in one piece (`iter_any`), where httpx/h11 walk each
chunk of the chunked encoding in Python and yield them one by one. Measured with
scripts/bench_stream.py (200-chunk streams): Understudy's CPU per relayed stream fell from ~7.7 ms to
~1.8 ms, and a burst of upstream events now leaves as one write instead of one per event.
"""
from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from typing import AsyncIterator, Mapping

import aiohttp

from app.inference.base import UpstreamError

CONNECT_TIMEOUT = 10.0
POOL_TIMEOUT = 60.0  # waiting for a free pooled connection, connecting included
DEFAULT_READ_TIMEOUT = 600.0

# Failures of the transport: the upstream could not be reached, or the connection broke.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)

# Response headers that describe our hop to the upstream, not the payload (the body is decoded, so
# content-encoding/length no longer apply).
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization", "set-cookie", "date", "server", "alt-svc", "via",
})


def timeout(read: float | None = DEFAULT_READ_TIMEOUT) -> aiohttp.ClientTimeout:
    """No total limit (streams may run long); `read` bounds the silence between two reads."""
    return aiohttp.ClientTimeout(total=None, connect=POOL_TIMEOUT, sock_connect=CONNECT_TIMEOUT, sock_read=read)


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.TimeoutError)


def is_retryable_error(exc: BaseException) -> bool:
    """Network failures worth another attempt: refused or reset connections, connect timeouts, a body cut
    short (only ever seen here before the caller got anything). Not a read timeout: the upstream was
    merely slow, and waiting another full read timeout rarely helps the caller who is already waiting."""
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return False
    return isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError))


class UpstreamClient:
    """The process's upstream HTTP client (the router owns it and closes it): HTTP/1.1 keep-alive with a
    pool large enough for many concurrent streams, no cookie jar (the client is shared by every tenant and
    provider: a jar would send one upstream's Set-Cookie back on everyone's later requests). The session
    is made on first use, inside the event loop that uses it (aiohttp binds a session to one loop)."""

    def __init__(self, read_timeout: float | None = DEFAULT_READ_TIMEOUT, tape=None) -> None:
        self._timeout = timeout(read_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.is_closed = False
        self.tape = tape  # cassettes.Tape when recording or replaying (UNDERSTUDY_RECORD / _REPLAY)

    @property
    def session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if self.is_closed:
                raise RuntimeError("the upstream client is closed")
            connector = aiohttp.TCPConnector(limit=1024, limit_per_host=0, keepalive_timeout=60.0)
            session = self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=self._timeout, trust_env=False,
            )
        return session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
        self.is_closed = True


def new_client(read_timeout: float | None = DEFAULT_READ_TIMEOUT, tape=None) -> UpstreamClient:
    return UpstreamClient(read_timeout, tape)


class UpstreamResponse:
    """An upstream's answer: status and headers; the body either read already (`content`) or streamed
    (`chunks()`, then `aclose()`)."""

    __slots__ = ("_raw", "content")

    def __init__(self, raw: aiohttp.ClientResponse, content: bytes | None = None) -> None:
        self._raw = raw
        self.content = content

    @property
    def status_code(self) -> int:
        return self._raw.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._raw.headers

    async def aread(self) -> bytes:
        if self.content is None:
            try:
                self.content = await self._raw.read()
            finally:
                self._raw.release()
        return self.content

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: each piece is everything received since the previous one, so a burst of
        upstream events is passed on as one piece (never held back waiting for more)."""
        if self.content is not None:
            if self.content:
                yield self.content
            return
        content = self._raw.content
        try:
            async for chunk in content.iter_any():
                yield chunk
        except aiohttp.ClientPayloadError:
            # The connection broke. aiohttp raises before handing over what arrived ahead of the break
            # (it keeps it buffered): pass that on first, so a cut-off stream keeps all its received
            # output. `_read_nowait` is the reader's own buffer accessor (no public one ignores the error).
            rest = content._read_nowait(-1) if content._size else b""
            if rest:
                yield rest
            raise

    def buffered(self) -> tuple[bytes, bool]:
        """What arrived but was not read yet, and whether that is the end of the body (for a recording of a
        stream its consumer left early, at `[DONE]`). Private reader state, as in `chunks()`."""
        if self.content is not None:
            return b"", True
        content = self._raw.content
        try:
            return (content._read_nowait(-1) if content._size else b""), content.at_eof()
        except Exception:  # the connection is already gone: nothing more to have
            return b"", False

    async def aclose(self) -> None:
        """Returns the connection to the pool, or closes it when the body was not read to the end."""
        self._raw.release()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # first try included
    base_delay: float = 0.5  # seconds, doubled per attempt, with jitter
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # an upstream asking for a longer wait gets its error passed on instead


def is_retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
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
    client: UpstreamClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    stream: bool = False,
    timeout: aiohttp.ClientTimeout | None = None,
    retry: RetryPolicy = RetryPolicy(),
) -> UpstreamResponse:
    """Sends until a response that is not worth retrying, or attempts run out, and returns it — an error
    status included (the caller maps it). With `stream=True` the body is unread: the caller iterates it
    and must `aclose()` it; nothing is retried from then on. Network errors of the last attempt raise.
    With a tape (record/replay) the final answer is recorded, or answered from a cassette with no network
    (a miss raises `cassettes.CassetteMiss`)."""
    if client.tape is not None:
        return await client.tape.exchange(
            method, url, headers, content, stream,
            lambda: _send(client, method, url, headers=headers, content=content, stream=stream, timeout=timeout, retry=retry),
        )
    return await _send(client, method, url, headers=headers, content=content, stream=stream, timeout=timeout, retry=retry)


async def _send(client: UpstreamClient, method: str, url: str, *, headers: dict[str, str] | None, content: bytes | None,
                stream: bool, timeout: aiohttp.ClientTimeout | None, retry: RetryPolicy) -> UpstreamResponse:
    attempt = 0
    while True:
        attempt += 1
        try:
            options = {"timeout": timeout} if timeout is not None else {}
            raw = await client.session.request(method, url, headers=headers, data=content, **options)
            response = UpstreamResponse(raw)
            if not stream:
                await response.aread()
        except TRANSPORT_ERRORS as exc:
            if attempt >= retry.max_attempts or not is_retryable_error(exc):
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
        except TRANSPORT_ERRORS:
            pass
        await response.aclose()
        await asyncio.sleep(backoff(attempt, retry) if wait is None else wait)


def _should_retry(response: UpstreamResponse) -> bool:
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


def response_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The upstream's headers worth passing on (content type, request ids, rate limits, retry hints), names lowercased."""
    lowered = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in lowered if k not in HOP_HEADERS}


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
