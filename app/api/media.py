"""An images or audio answer (app/inference/base.py `MediaAnswer`) as the HTTP response it stands for."""
from __future__ import annotations

from litestar import Response
from litestar.response import Stream

from app.api.relay import relay_response
from app.core.sse import SSEvent, sse_response
from app.inference.base import MediaAnswer


def media_response(answer: MediaAnswer) -> dict | Response | Stream:
    if answer.kind == "relayed":
        return relay_response(answer.body)
    if answer.kind == "events":
        return sse_response(SSEvent(data, event=name) async for name, data in answer.body)
    if answer.kind == "content":
        return Response(answer.body, media_type=answer.media_type)
    return answer.body
