"""Anthropic's Messages API as a provider: OpenAI-shaped chat through the translators, and /v1/messages
(and /v1/messages/count_tokens) relayed as they are for clients that already speak Anthropic.

Errors carry both shapes: `body` in OpenAI's (for OpenAI endpoints), `native` = (status, Anthropic's
body) for the Anthropic endpoints, so Claude Code sees exactly what Anthropic said.
"""
from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncIterator

import msgspec

from app.inference import http
from app.inference.providers.openai_compat import HTTPProvider, NoMedia
from app.inference.translate import anthropic as translate

API_VERSION = "2023-06-01"


class AnthropicProvider(NoMedia, HTTPProvider):
    """base_url without the version prefix, like the Anthropic SDK's (https://api.anthropic.com)."""

    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A relayed request's own anthropic-version wins over this default (headers merge after it).
        self.extra_headers = {"anthropic-version": API_VERSION, **self.extra_headers}

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    # ---- errors: {"type": "error", "error": {"type", "message"}} ----

    def is_native_error(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("type") == "error" and isinstance(body.get("error"), dict)

    def native_error(self, status: int, message: str) -> dict:
        return translate.openai_error_to_anthropic(status, http.openai_error_body(status, message))

    def to_openai_error(self, status: int, native: dict) -> dict:
        return translate.anthropic_error_to_openai(status, native)

    # ---- chat ----

    def _request(self, params: dict) -> dict:
        try:
            return translate.chat_to_messages_request(params)
        except ValueError as exc:
            raise self.bad_request(exc) from None

    async def chat(self, params: dict) -> dict:
        message = await self.post_json("/v1/messages", self._request(params))
        return translate.message_to_chat_completion(message, model=params.get("model"))

    async def chat_stream(self, params: dict) -> AsyncIterator[dict]:
        request = {**self._request(params), "stream": True}
        include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
        # aclosing: a client leaving early closes the upstream connection now, not at garbage collection.
        async with aclosing(self._events(request)) as events, \
                aclosing(translate.messages_stream_to_chat_chunks(events, include_usage=include_usage)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _events(self, request: dict) -> AsyncIterator[dict]:
        async with aclosing(self.post_sse("/v1/messages", request)) as sse:
            async for name, data in sse:
                try:
                    event = msgspec.json.decode(data)
                except msgspec.DecodeError:
                    raise self.error(502, self.native_error(502, "The upstream provider sent an invalid stream event.")) from None
                if name == "error" or event.get("type") == "error":  # e.g. overloaded_error after the stream began
                    raise self.error(_status_of(event), event)
                yield event

    # ---- the rest of OpenAI's surface has no Anthropic counterpart ----

    async def completions(self, params: dict) -> dict:
        raise self.not_supported("The legacy completions API")

    async def completions_stream(self, params: dict) -> AsyncIterator[dict]:
        raise self.not_supported("The legacy completions API")
        yield {}  # pragma: no cover - makes this an async generator

    async def embeddings(self, params: dict) -> dict:
        raise self.not_supported("Embeddings")

    async def moderations(self, params: dict) -> dict:
        raise self.not_supported("Moderations")


def _status_of(event: dict) -> int:
    """An in-stream error has no HTTP status; Anthropic's error type implies one."""
    kind = (event.get("error") or {}).get("type")
    return {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
            "request_too_large": 413, "rate_limit_error": 429, "timeout_error": 504, "overloaded_error": 529}.get(kind, 500)
