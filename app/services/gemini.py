"""Gemini's generateContent on any provider: relayed to a Gemini upstream as it is, otherwise called in
OpenAI's chat shape through the translators and answered in Gemini's shape, streams included."""
from __future__ import annotations

from typing import AsyncIterator

from app.core.errors import invalid_request
from app.inference.base import RelayResponse, UpstreamError
from app.inference.translate import gemini as translate
from app.services.inference import InferenceService
from app.services.inference_errors import api_error
from app.services.relay_refs import gemini_refs
from app.services.relay_scope import RelayScope

ACTIONS = ("generateContent", "streamGenerateContent")


def split_model_action(model_action: str) -> tuple[str, str]:
    """`gemini-2.5-flash:generateContent` -> ("gemini-2.5-flash", "generateContent")."""
    model, _, action = model_action.rpartition(":")
    model = model.removeprefix("models/")
    if not model or action not in ACTIONS:
        raise invalid_request(f"Unknown method '{action}': use {' or '.join(ACTIONS)}.", param="model")
    return model, action


class GeminiService:
    def __init__(self, inference: InferenceService, relay_scope: RelayScope) -> None:
        self._inference = inference
        self._scope = relay_scope

    async def relay(self, tenant_id: str, model: str, action: str, raw_body: bytes, *, stream: bool, body: dict | None = None) -> RelayResponse | None:
        provider = self._inference.provider_for(tenant_id, model)
        if provider.info.kind != "gemini" or await self._inference.scripted(tenant_id):
            return None
        # Cached contents and uploaded files belong to the upstream account, no tenant's (app/services/relay_scope.py).
        await self._scope.check(tenant_id, gemini_refs(body or {}))
        path = f"/v1beta/models/{model}:{action}" + ("?alt=sse" if stream else "")
        try:
            return await provider.relay("POST", path, body=raw_body, headers={"content-type": "application/json"}, stream=stream)
        except UpstreamError as error:
            raise api_error(error) from None

    async def generate(self, tenant_id: str, model: str, body: dict) -> dict:
        completion = await self._inference.call(tenant_id, "chat", translate.gemini_to_chat_request(model, body), endpoint="gemini")
        return translate.chat_completion_to_gemini_response(completion)

    async def generate_stream(self, tenant_id: str, model: str, body: dict) -> AsyncIterator[dict]:
        chat = {**translate.gemini_to_chat_request(model, body), "stream": True, "stream_options": {"include_usage": True}}
        chunks = await self._inference.stream(tenant_id, "chat_stream", chat, endpoint="gemini")
        return translate.chat_chunks_to_gemini_stream(chunks)
