"""An upstream's response passed to the client as it arrives (same-protocol relay)."""
from __future__ import annotations

from litestar.response import Stream

from app.core.sse import EventStream
from app.inference.base import RelayResponse

# Hop-by-hop and framing headers are the server's business, not the upstream's.
_DROP = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date", "server", "content-type"}


async def _released(relayed: RelayResponse):
    """The body, and the upstream connection released however the client's stream ends (a client
    that goes away mid-stream cancels this generator; `finally` still runs)."""
    try:
        async for chunk in relayed.body:
            yield chunk
    finally:
        if relayed.close is not None:
            await relayed.close()


def relay_response(relayed: RelayResponse) -> Stream:
    """EventStream keeps the upstream's content type even where the handler declares JSON."""
    return EventStream(
        _released(relayed),
        status_code=relayed.status_code,
        media_type=relayed.headers.get("content-type", "application/json"),
        headers={k: v for k, v in relayed.headers.items() if k.lower() not in _DROP},
    )
