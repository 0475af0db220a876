"""How `understudy serve` runs uvicorn: an HTTP protocol with the limits uvicorn lacks, and its options.

uvicorn's httptools protocol (what its "auto" picks when uvicorn[standard] is installed) buffers a
request's headers with no size bound and no deadline: a 10 MB `Authorization` header is read whole, a
connection that never finishes its headers holds its file descriptor for ever, and `limit_concurrency`
only counts a connection once its headers are in. `GuardedProtocol` adds, per process:

- headers (request line included) over `max_header_bytes` while they arrive: 431, and what still comes
  is dropped unparsed, briefly, before the connection is closed (headers that arrive whole in one read
  are refused by app/api/limits.py, the second line);
- a request's headers not in within `header_timeout_seconds` of its first byte (or of the connection):
  408 (or nothing, for a connection that never sent a byte), closed;
- `max_connections` open connections: a new one closes the oldest connection that is idle or still
  reading its headers; when every connection is busy with a request, the new one gets a 503;
- a response sent before its request's body was read whole (an early 413, or a 404 or 401 that never
  reads the body): it says `connection: close`, so a client does not send its next request on a
  connection about to end; the rest of the body is read and dropped for a moment, so the client sees
  the answer, then the connection is closed.

uvicorn's own `limit_concurrency` is not used: it answers 503 from the moment the connection count
reaches it, which a cap on connections would make every new request meet.
"""
from __future__ import annotations

import functools
import json
import logging
import resource

from app.settings import Settings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
except ImportError:  # no httptools: plain h11 with its own header bound (run_options)
    HttpToolsProtocol = None

log = logging.getLogger("understudy.http")
_LINGER_SECONDS, _LINGER_BYTES = 2.0, 16 * 1024 * 1024
_SPARE_FDS = 256  # beside connections: the database, blobs being written, upstream sockets, the listener
# Connections that may be closed to make room (idle, or still reading headers), oldest first.
_evictable: dict = {}


def _raw_response(status: int, reason: str, message: str | None) -> bytes:
    body = b"" if message is None else json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}).encode()
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode() + body


TOO_LARGE = _raw_response(431, "Request Header Fields Too Large", "Request header fields too large.")
TIMEOUT = _raw_response(408, "Request Timeout", "The request's headers did not arrive in time.")
BUSY = _raw_response(503, "Service Unavailable", "The server is at its connection limit; try again.")


@functools.cache
def _limits() -> Settings:
    """This process's settings (uvicorn builds the protocol; `serve` put its options in the environment)."""
    return Settings.from_env()


def connection_cap(max_connections: int) -> int:
    """`max_connections`, or fewer when the process may not open that many files: past its descriptor
    limit a server stops accepting anyone, so the cap must bite first."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - _SPARE_FDS))


@functools.cache
def _cap() -> int:
    return connection_cap(_limits().max_connections)


def raise_fd_limit(max_connections: int) -> None:
    """Lifts the soft descriptor limit towards the hard one so the connection cap fits (inherited by workers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    if connection_cap(max_connections) < max_connections:
        log.warning("open files are limited to %s: at most %s connections per process (UNDERSTUDY_MAX_CONNECTIONS=%s)",
                    resource.getrlimit(resource.RLIMIT_NOFILE)[0], connection_cap(max_connections), max_connections)


if HttpToolsProtocol is not None:

    _CLOSE = (b"connection", b"close")
    _BODY_METHODS = frozenset(("POST", "PUT", "PATCH", "DELETE"))

    class EarlyAnswerCycle(RequestResponseCycle):
        """A request that may carry a body. Answered before that body is in, the response says
        `connection: close`. Without it, a keep-alive client would send its next request on a
        connection that the linger is about to close, and see "Server disconnected"."""

        async def send(self, message) -> None:
            if self.more_body and message["type"] == "http.response.start" and not self.response_started:
                keep_alive = self.keep_alive
                await super().send({**message, "headers": [*message.get("headers", ()), _CLOSE]})
                # The header cleared keep_alive, and uvicorn closes at once on a cleared keep_alive.
                # Restore it: the linger (on_response_complete) drains the body, then closes.
                self.keep_alive = keep_alive
                return
            await super().send(message)

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            settings = _limits()
            self._max_header_bytes, self._header_timeout = settings.max_header_bytes, settings.header_timeout_seconds
            self._max_connections = _cap()
            self._reading_headers, self._header_bytes, self._received = True, 0, False
            self._header_timer = None
            self._lingering = -1  # bytes still dropped after an early answer before closing; -1: not lingering
            self._parsing = True  # False once headers were refused: what follows is never parsed

        # ---- connections ----

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > self._max_connections and not self._make_room():
                transport.write(BUSY)
                transport.close()
                return
            _evictable[self] = None
            self._arm()

        def _make_room(self) -> bool:
            for victim in _evictable:
                if victim is not self:
                    victim._close()
                    return True
            return False

        def connection_lost(self, exc) -> None:
            _evictable.pop(self, None)
            self._disarm()
            super().connection_lost(exc)

        def _close(self) -> None:
            _evictable.pop(self, None)
            self._disarm()
            if not self.transport.is_closing():
                self.transport.close()

        # ---- headers: size and deadline ----

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(self._header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm()  # a pipelined request behind a long response: its time starts after
                return
            if self._received:
                self.transport.write(TIMEOUT)
            self._close()

        def _linger(self) -> None:
            """An answer was sent before the request was read whole: drop what the client is still
            sending, for a moment, so that it reads the answer rather than a reset; then close."""
            self._lingering = _LINGER_BYTES
            self.loop.call_later(_LINGER_SECONDS, self._close)

        def data_received(self, data: bytes) -> None:
            if self._lingering >= 0:
                self._lingering -= len(data)
                if self._lingering < 0:
                    self._close()
                    return
                if not self._parsing:
                    return
            self._received = True
            super().data_received(data)
            if self._reading_headers and not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > self._max_header_bytes:
                    self._disarm()
                    _evictable.pop(self, None)
                    if self.cycle is None or self.cycle.response_complete:
                        self.transport.write(TOO_LARGE)
                        self._parsing = False
                        self._linger()
                    else:
                        self._close()
                    return
                self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_headers, self._header_bytes = True, 0
            self._arm()

        def on_headers_complete(self) -> None:
            self._reading_headers = False
            self._disarm()
            _evictable.pop(self, None)
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle.scope["method"] in _BODY_METHODS:
                cycle.__class__ = EarlyAnswerCycle  # before its ASGI task first runs, which looks up `send`

        def on_message_complete(self) -> None:
            super().on_message_complete()
            if self._lingering >= 0:
                self._close()  # the body an early response left unread is over

        def on_response_complete(self) -> None:
            # The cycle whose response just ended, unless a request already waits behind it: then
            # `self.cycle` is that next request's (its response not started, its body maybe still coming).
            cycle = self.cycle
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if cycle is not None and cycle.response_complete and cycle.more_body:
                self._linger()  # answered before the body was read whole (an early 413)
                return
            if self.cycle is None or self.cycle.response_complete:
                self._reading_headers, self._header_bytes, self._received = True, 0, False
                _evictable[self] = None  # idle until its next request: uvicorn's keep-alive timeout applies


def run_options(settings: Settings) -> dict:
    """uvicorn.run's keyword arguments for the HTTP side."""
    raise_fd_limit(settings.max_connections)
    options = {
        "timeout_keep_alive": settings.keep_alive_seconds,
        # X-Forwarded-For/-Proto rewrite the client and scheme only behind a proxy we were told to trust.
        "proxy_headers": settings.trust_forwarded,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # uvicorn formats each access-log line's fields before the logger drops it: off unless it is shown.
        "access_log": settings.log_level.lower() in ("trace", "debug", "info"),
    }
    if HttpToolsProtocol is not None:
        options["http"] = "app.serving:GuardedProtocol"
    else:
        options["http"] = "h11"
        log.warning("httptools is not installed: headers are bounded by h11, without a deadline or a connection cap")
    return options
