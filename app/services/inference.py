"""Model calls that keep no state (legacy completions, embeddings, moderations), and the routing every
model call shares: the router picks the provider; the offline model answers the ids ModelsService knows
(the catalogue, configured extras and, unless strict, family-looking ids)."""
from __future__ import annotations

from typing import AsyncIterator

from app.core.errors import APIError
from app.inference.base import MediaAnswer, MediaRequest, Provider, RelayResponse, UpstreamError
from app.inference.providers.offline.style import STYLE_KEY
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
    for name in ("temperature", "top_p", "service_tier"):
        if source.get(name) is not None:
            params[name] = source[name]
    return params


def base_model(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org:suffix:id` -> `gpt-4o-mini-2024-07-18`; other ids unchanged."""
    if model.startswith("ft:"):
        parts = model.split(":")
        if len(parts) > 1 and parts[1]:
            return parts[1]
    return model


# Model calls whose usage is recorded (app/services/usage.py), by the kind of usage they are.
_USAGE_KINDS = {"chat": "completions", "completions": "completions", "embeddings": "embeddings",
                "chat_stream": "completions", "completions_stream": "completions"}


# The endpoint a call comes from when its caller does not say (scripted rules match on it).
_ENDPOINTS = {"chat": "chat", "chat_stream": "chat", "completions": "completions", "completions_stream": "completions",
              "embeddings": "embeddings", "moderations": "moderations"}


class InferenceService:
    def __init__(self, router, models: ModelsService, usage=None, script=None) -> None:
        self.router = router
        self._models = models
        self.usage = usage  # a UsageRecorder, or None: nothing is recorded
        self.script = script  # a ScriptService: scripted answers and faults come before any provider

    async def scripted(self, tenant_id: str) -> bool:
        """Whether scripted rules may answer this tenant: byte-for-byte relays step aside then, so that
        every call reaches `call`/`stream` in chat's shape, where the rules are tried."""
        return self.script is not None and await self.script.scripted(tenant_id)

    def provider_for(self, tenant_id: str, model: str) -> Provider:
        """A fine-tuned model (`ft:{base}:…`) goes where its base model goes; whether the tenant owns
        it is checked (asynchronously) when it is called."""
        base = base_model(model)
        provider = self.router.route(base)
        if provider.info.kind == "offline":
            self._models.get(tenant_id, base)  # 404 model_not_found for ids it does not know
        return provider

    async def _fine_tuned(self, tenant_id: str, provider: Provider, params: dict) -> dict:
        """A fine-tuned model must be the tenant's; on the offline model its training examples ride along."""
        model = params.get("model")
        if not isinstance(model, str) or not model.startswith("ft:"):
            return params
        found = await self._models.fine_tuned(tenant_id, model)
        if found is None:
            if provider.info.kind != "offline":
                return params  # an upstream's own fine-tuned model
            raise APIError(
                f"The model '{model}' does not exist or you do not have access to it.", status_code=404, param="model", code="model_not_found"
            )
        return {**params, STYLE_KEY: found.get("examples") or []} if provider.info.kind == "offline" else params

    async def call(self, tenant_id: str, method: str, params: dict, *, endpoint: str | None = None) -> dict:
        # The model is checked (known id, the tenant's own fine-tune) before a rule may stand in for it.
        provider = self.provider_for(tenant_id, params["model"])
        model_params = await self._fine_tuned(tenant_id, provider, params)
        if self.script is not None and method != "moderations":
            rule = await self.script.decide(tenant_id, endpoint or _ENDPOINTS[method], method, params)
            if rule is not None:
                try:
                    result = await self.script.answer(rule, method, params)
                except UpstreamError as error:
                    raise api_error(error) from None
                self._record(method, tenant_id, params, result)
                return result
        params = model_params
        try:
            result = await getattr(provider, method)(params)
        except UpstreamError as error:
            raise api_error(error) from None
        self._record(method, tenant_id, params, result)
        return result

    def _record(self, method: str, tenant_id: str, params: dict, result: dict) -> None:
        kind = _USAGE_KINDS.get(method)
        if kind is not None and self.usage is not None:
            self.usage.record(kind, tenant_id, result.get("model") or params["model"], result.get("usage"))

    async def stream(self, tenant_id: str, method: str, params: dict, *, endpoint: str | None = None) -> AsyncIterator[dict]:
        provider = self.provider_for(tenant_id, params["model"])
        model_params = await self._fine_tuned(tenant_id, provider, params)
        answer = None
        if self.script is not None:
            rule = await self.script.decide(tenant_id, endpoint or _ENDPOINTS[method], method, params)
            if rule is not None:
                answer = lambda params: self.script.stream(rule, method, params)  # noqa: E731
        if answer is None:
            params, answer = model_params, getattr(provider, method)
        if self.usage is None or method not in _USAGE_KINDS:
            return await started(answer(params))
        # The usage is always asked for (it is recorded); a client that did not ask does not see it.
        options = params.get("stream_options")
        hide = not (isinstance(options, dict) and options.get("include_usage"))
        if hide:
            params = {**params, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}
        return await started(self._metered(answer(params), tenant_id, params["model"], hide))

    async def _metered(self, chunks: AsyncIterator[dict], tenant_id: str, model: str, hide: bool) -> AsyncIterator[dict]:
        usage = None
        first = True
        try:
            async for chunk in chunks:
                if first:
                    model, first = chunk.get("model") or model, False
                if "usage" in chunk:
                    if chunk["usage"] is not None:
                        usage = chunk["usage"]
                        if hide and not chunk.get("choices"):
                            continue
                    if hide:
                        del chunk["usage"]
                yield chunk
        finally:
            self.usage.record("completions", tenant_id, model, usage)

    async def relay(self, tenant_id: str, model: str, path: str, raw_body: bytes, *, stream: bool) -> RelayResponse | None:
        """Byte-for-byte passthrough to an OpenAI-compatible upstream; None for other providers."""
        provider = self.provider_for(tenant_id, model)
        if provider.info.kind != "openai" or await self.scripted(tenant_id):
            return None
        try:
            return await provider.relay("POST", path, body=raw_body, headers={"content-type": "application/json"}, stream=stream)
        except UpstreamError as error:
            raise api_error(error) from None

    async def media(self, tenant_id: str, method: str, model: str, request: MediaRequest) -> MediaAnswer:
        """An images or audio request (`method`: images, speech or transcription), checked already, to the
        provider `model` routes to. `model` is the one the checks settled on (a client may leave it out)."""
        provider = self.provider_for(tenant_id, model)
        try:
            return await getattr(provider, method)(request)
        except UpstreamError as error:
            raise api_error(error) from None

    async def moderations(self, tenant_id: str, params: dict) -> dict:
        return await self.call(tenant_id, "moderations", {**params, "model": params.get("model") or DEFAULT_MODERATION_MODEL})
