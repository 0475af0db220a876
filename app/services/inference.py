"""Model calls that keep no state (legacy completions, embeddings, moderations), and the routing every
model call shares: the router picks the provider; the offline model answers catalogue ids only."""
from __future__ import annotations

from typing import AsyncIterator

from app.inference.base import Provider, RelayResponse, UpstreamError
from app.services.inference_errors import api_error, started
from app.services.models import ModelsService

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


def streamed_chat_request(model: str, messages: list[dict], tools: list[dict], tool_choice, source: dict) -> dict:
    """The streamed chat-completions request (usage included) the Assistants and Responses engines make:
    their tools and tool choice already in chat's shape; parallel_tool_calls and sampling from `source`."""
    params: dict = {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    if tools:
        params["tools"] = tools
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        if source.get("parallel_tool_calls") is False:
            params["parallel_tool_calls"] = False
    for name in ("temperature", "top_p"):
        if source.get(name) is not None:
            params[name] = source[name]
    return params


class InferenceService:
    def __init__(self, router, models: ModelsService) -> None:
        self.router = router
        self._models = models

    def provider_for(self, tenant_id: str, model: str) -> Provider:
        provider = self.router.route(model)
        if provider.info.kind == "offline":
            self._models.get(tenant_id, model)  # 404 model_not_found for ids outside the catalogue
        return provider

    async def call(self, tenant_id: str, method: str, params: dict) -> dict:
        provider = self.provider_for(tenant_id, params["model"])
        try:
            return await getattr(provider, method)(params)
        except UpstreamError as error:
            raise api_error(error) from None

    async def stream(self, tenant_id: str, method: str, params: dict) -> AsyncIterator[dict]:
        provider = self.provider_for(tenant_id, params["model"])
        return await started(getattr(provider, method)(params))

    async def relay(self, tenant_id: str, model: str, path: str, raw_body: bytes, *, stream: bool) -> RelayResponse | None:
        """Byte-for-byte passthrough to an OpenAI-compatible upstream; None for other providers."""
        provider = self.provider_for(tenant_id, model)
        if provider.info.kind != "openai":
            return None
        try:
            return await provider.relay("POST", path, body=raw_body, headers={"content-type": "application/json"}, stream=stream)
        except UpstreamError as error:
            raise api_error(error) from None

    async def moderations(self, tenant_id: str, params: dict) -> dict:
        return await self.call(tenant_id, "moderations", {**params, "model": params.get("model") or DEFAULT_MODERATION_MODEL})
