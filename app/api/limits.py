"""The second line behind app/serving.py: a request whose line and headers together exceed
`max_header_bytes` is answered 431 before anything reads them (they may have arrived in one read, or
the app may run under another server). Outermost but for OpenAIHeaders, so the answer still carries
`x-request-id`."""
from __future__ import annotations

import json

_BODY = json.dumps({"error": {"message": "Request header fields too large.", "type": "invalid_request_error", "param": None, "code": None}}).encode()


class HeaderLimit:
    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            for name, value in scope["headers"]:
                size += len(name) + len(value) + 4
            if size > self.max_bytes:
                await send({"type": "http.response.start", "status": 431, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": _BODY})
                return
        await self.app(scope, receive, send)
