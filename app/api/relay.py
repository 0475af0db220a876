"""An upstream's response passed to the client as it arrives (same-protocol relay)."""
from __future__ import annotations

from collections import deque
from typing import Callable

from litestar.response import Stream

from app.core.sse import EventStream
from app.inference.base import RelayResponse
from app.services.relayed_usage import usage_of_relayed

# Hop-by-hop and framing headers are the server's business, not the upstream's.
_DROP = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date", "server", "content-type"}


# What is kept of a metered body to read its usage from: a JSON body whole (up to a bound), a stream's
# head (Anthropic's message_start) and tail (the events that carry usage). No per-chunk parsing.
_JSON_LIMIT, _HEAD, _TAIL = 4 * 1024 * 1024, 8 * 1024, 16 * 1024


async def _released(relayed: RelayResponse, metered: Callable[[dict | None], None] | None):
    """The body, and the upstream connection released however the client's stream ends (a client
    that goes away mid-stream cancels this generator; `finally` still runs). A successful body's usage
    goes to `metered`: a JSON body's once sent whole, a stream's once its usage event has passed, even
    if the client left before the upstream's body ended (the SDK closes a stream at `[DONE]`)."""
    sse = "text/event-stream" in relayed.headers.get("content-type", "")
    head, tail, tail_bytes, complete = bytearray(), deque(), 0, False
    try:
        async for chunk in relayed.body:
            if metered is not None:
                if len(head) < (_HEAD if sse else _JSON_LIMIT):
                    head += chunk
                if sse:
                    tail.append(chunk)
                    tail_bytes += len(chunk)
                    while tail_bytes - len(tail[0]) >= _TAIL:
                        tail_bytes -= len(tail.popleft())
            yield chunk
        complete = True
    finally:
        try:
            # Before the close, which may be cancelled with the client's leaving. A client that left before
            # the usage came (or a cut JSON body): a request, tokens unknown.
            if metered is not None and relayed.status_code < 400:
                metered(usage_of_relayed(bytes(head), b"".join(tail), sse=sse) if complete or sse else None)
        finally:
            if relayed.close is not None:
                await relayed.close()


def relay_response(relayed: RelayResponse, metered: Callable[[dict | None], None] | None = None) -> Stream:
    """EventStream keeps the upstream's content type even where the handler declares JSON. `metered`
    records the relayed call's usage (app/services/usage.py `UsageRecorder.metered`)."""
    return EventStream(
        _released(relayed, metered),
        status_code=relayed.status_code,
        media_type=relayed.headers.get("content-type", "application/json"),
        headers={k: v for k, v in relayed.headers.items() if k.lower() not in _DROP},
    )
