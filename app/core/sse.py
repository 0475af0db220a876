"""The one server-sent-events helper every streaming endpoint uses.

OpenAI's streams come in two spellings: chat/completions send bare `data: {...}` lines ending with
`data: [DONE]`; assistants, responses and Anthropic name each event (`event: thread.run.created`).
Both are `SSEvent`s here. Litestar's own ServerSentEvent hops to a thread before the first event and
has no keep-alive, so this encodes the frames itself on a plain Stream and sends `: ping` comments
when the producer is quiet (proxies drop idle connections).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterable, AsyncIterator

import msgspec
from litestar.response import Stream

_encode_json = msgspec.json.Encoder().encode
PING = b": ping\n\n"


class BrokenStream(Exception):
    """Raised by a producer whose stream must break as a failing upstream's would (a scripted fault):
    `frame` is written as it is, then the connection drops without the stream's proper end."""

    frame: bytes = b""


class _QuietBrokenStreams(logging.Filter):
    """A broken stream is the point, not a server error: no traceback in the log for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        pending = [record.exc_info[1]] if record.exc_info else []
        while pending:  # through causes and the task groups streaming runs in
            error = pending.pop()
            if isinstance(error, BrokenStream):
                return False
            if isinstance(error, BaseExceptionGroup):
                pending.extend(error.exceptions)
            pending.extend(e for e in (error.__cause__, error.__context__) if e is not None)
        return True


def install_log_filter() -> None:
    for name in ("uvicorn.error", "litestar"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietBrokenStreams) for f in logger.filters):
            logger.addFilter(_QuietBrokenStreams())


@dataclass(frozen=True, slots=True)
class SSEvent:
    data: Any  # a JSON-able object, or a str sent as it is (e.g. "[DONE]")
    event: str | None = None

    def encode(self) -> bytes:
        payload = self.data.encode() if isinstance(self.data, str) else _encode_json(self.data)
        if self.event is None:
            return b"data: " + payload + b"\n\n"
        return b"event: " + self.event.encode() + b"\ndata: " + payload + b"\n\n"


DONE = SSEvent("[DONE]")


async def data_events(items: AsyncIterable[Any], *, done: bool = True) -> AsyncIterator[SSEvent]:
    """OpenAI's framing: each item as a bare `data:` event, then `data: [DONE]`."""
    async for item in items:
        yield SSEvent(item)
    if done:
        yield DONE


async def named_events(items: AsyncIterable[tuple[str, Any]]) -> AsyncIterator[SSEvent]:
    """Anthropic's (and the assistants') framing: `(name, data)` pairs as named events."""
    async for name, data in items:
        yield SSEvent(data, event=name)


async def encode_events(events: AsyncIterable[SSEvent], ping_interval: float | None) -> AsyncIterator[bytes]:
    iterator = aiter(events)
    pending: asyncio.Future | None = None
    try:
        if not ping_interval:
            async for event in iterator:
                yield event.encode()
            return
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait((pending,), timeout=ping_interval)
            if not done:
                yield PING
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            yield event.encode()
    except BrokenStream as broken:
        if broken.frame:
            yield broken.frame
        raise
    finally:
        if pending is not None and not pending.done():
            # The producer is mid-step in its own task (the client left while it was quiet): cancelling
            # that step ends the generator there, `finally` included. aclose() now would raise
            # "asynchronous generator is already running".
            pending.cancel()
        else:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()


class EventStream(Stream):
    """A Stream whose own media type wins over the handler's: a handler that returns either JSON or a
    stream (`-> dict | Stream`) has the JSON media type, which a plain Stream would be sent with."""

    def to_asgi_response(self, app, request, **kwargs):
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(app, request, **kwargs)


def sse_response(
    events: AsyncIterable[SSEvent], *, ping_interval: float | None = 15.0, headers: dict[str, str] | None = None
) -> Stream:
    return EventStream(
        encode_events(events, ping_interval),
        # Litestar appends "; charset=utf-8" to text/* media types itself.
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})},
    )
