"""The Anthropic Messages API on any provider.

An Anthropic upstream gets the request relayed as it is (beta flags and headers included); any other
provider (the offline model, OpenAI-compatible upstreams, Gemini) is called in OpenAI's chat shape
through the translators, and its answer translated back, streams included.
"""
from __future__ import annotations

from typing import AsyncIterator

from app.core.errors import invalid_request
from app.core.tokens import count_chat_tokens
from app.inference.base import RelayResponse, UpstreamError
from app.inference.providers.offline.offload import offloaded
from app.inference.providers.offline.schema import check_schema
from app.inference.providers.offline.schema_limits import SchemaError
from app.inference.translate import anthropic as translate
from app.services.anthropic_params import check_message_params
from app.services.inference import InferenceService
from app.services.inference_errors import api_error
from app.services.relay_refs import anthropic_refs
from app.services.relay_scope import RelayScope

# Request headers an Anthropic upstream needs to see (auth is the provider's own).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "content-type")


def _schemas(params: dict) -> list[tuple[str, dict]]:
    """(param, schema) for what the offline model generates values of: client tools' input_schema and
    the structured-output format."""
    found = [(f"tools.{i}.input_schema", t["input_schema"]) for i, t in enumerate(params.get("tools") or ())
             if t.get("type") in (None, "custom") and isinstance(t.get("input_schema"), dict)]
    for path, fmt in (("output_config.format", (params.get("output_config") or {}).get("format")), ("output_format", params.get("output_format"))):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            found.append((f"{path}.schema", fmt.get("schema")))
    return found


def _check_schemas(params: dict) -> None:
    """The offline model's bounds on the schemas it fills (app/inference/providers/offline/schema_limits.py)."""
    for param, schema in _schemas(params):
        try:
            check_schema(schema)
        except SchemaError as error:
            raise invalid_request(f"{param}: JSON schema is invalid or beyond the offline model's limits: {error.detail} "
                                  f"(in context={error.context!r})", param=param) from None


def _makes_containers(params: dict) -> bool:
    """Whether the answer may name a new code-execution container."""
    tools = params.get("tools") if isinstance(params.get("tools"), list) else []
    return params.get("container") is not None or any(isinstance(t, dict) and "code_execution" in str(t.get("type", "")) for t in tools)


class MessagesService:
    def __init__(self, inference: InferenceService, relay_scope: RelayScope) -> None:
        self._inference = inference
        self._scope = relay_scope

    async def relay(self, tenant_id: str, params: dict, raw_body: bytes, *, path: str, headers: dict[str, str]) -> RelayResponse | None:
        provider = self._inference.provider_for(tenant_id, params["model"])
        if provider.info.kind != "anthropic" or await self._inference.scripted(tenant_id):
            return None
        # A container to reuse or a Files API block must be the tenant's (app/services/relay_scope.py).
        await self._scope.check(tenant_id, anthropic_refs(params))
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        try:
            relayed = await provider.relay("POST", path, body=raw_body, headers=forwarded, stream=bool(params.get("stream")))
        except UpstreamError as error:
            raise api_error(error) from None
        return self._scope.watch(tenant_id, "anthropic", relayed) if _makes_containers(params) else relayed

    @staticmethod
    def _translated(params: dict) -> dict:
        try:
            return translate.messages_to_chat_request(params)
        except ValueError as error:  # content the chat shape cannot carry (a document by URL, a server-tool block)
            raise invalid_request(str(error)) from None

    async def _chat_params(self, tenant_id: str, params: dict) -> dict:
        if self._inference.provider_for(tenant_id, params["model"]).info.kind == "offline":
            await offloaded(_check_schemas, params)  # a bounded dry run of the values it will generate
        chat = self._translated(params)
        chat["model"] = params["model"]
        return chat

    async def create(self, tenant_id: str, params: dict) -> dict:
        completion = await self._inference.call(tenant_id, "chat", await self._chat_params(tenant_id, params), endpoint="messages")
        return translate.chat_completion_to_message(completion, model=params["model"])

    async def create_stream(self, tenant_id: str, params: dict) -> AsyncIterator[tuple[str, dict]]:
        chat = {**await self._chat_params(tenant_id, params), "stream": True, "stream_options": {"include_usage": True}}
        chunks = await self._inference.stream(tenant_id, "chat_stream", chat, endpoint="messages")
        input_tokens = count_chat_tokens(chat["messages"], chat.get("tools"))
        return translate.chat_chunks_to_messages_stream(chunks, model=params["model"], input_tokens=input_tokens)

    async def count_tokens(self, tenant_id: str, params: dict) -> dict:
        check_message_params(params, count_only=True)
        self._inference.provider_for(tenant_id, params["model"])
        chat = self._translated({**params, "max_tokens": params.get("max_tokens") or 1})
        return {"input_tokens": await offloaded(count_chat_tokens, chat["messages"], chat.get("tools"))}
