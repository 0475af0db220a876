"""Headers OpenAI sends on every response, which the SDKs read: `x-request-id` (shown in SDK errors),
`openai-processing-ms`, `openai-version`. Wraps the whole ASGI handler so 404s get them too."""
from __future__ import annotations

import time

from app.core.ids import request_id

_VERSION = (b"openai-version", b"2020-10-01")


class OpenAIHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id().encode()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                elapsed = str(int((time.perf_counter() - started) * 1000)).encode()
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid), (b"openai-processing-ms", elapsed), _VERSION]
            await send(message)

        await self.app(scope, receive, send_with_headers)
