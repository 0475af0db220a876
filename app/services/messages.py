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
from app.inference.translate import anthropic as translate
from app.services.inference import InferenceService
from app.services.inference_errors import api_error
from app.services.relay_refs import anthropic_refs
from app.services.relay_scope import RelayScope

# Request headers an Anthropic upstream needs to see (auth is the provider's own).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "content-type")


def check_message_params(params: dict) -> dict:
    """Anthropic's required fields. Deliberately lenient beyond them: Claude Code and newer SDKs send
    beta fields this server does not need to understand."""
    if not isinstance(params.get("model"), str) or not params["model"]:
        raise invalid_request("model: Field required", param="model")
    if not isinstance(params.get("max_tokens"), int) or isinstance(params.get("max_tokens"), bool) or params["max_tokens"] < 1:
        raise invalid_request("max_tokens: Field required (an integer of at least 1)", param="max_tokens")
    messages = params.get("messages")
    if not isinstance(messages, list):
        raise invalid_request("messages: Field required (a list)", param="messages")
    for index, message in enumerate(messages):
        # "system" turns inside messages come with a beta (mid-conversation system) Claude Code sends.
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise invalid_request(f"messages.{index}.role: Input should be 'user' or 'assistant'", param=f"messages.{index}.role")
        if "content" not in message:
            raise invalid_request(f"messages.{index}.content: Field required", param=f"messages.{index}.content")
    return params


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
        if provider.info.kind != "anthropic":
            return None
        # A container to reuse or a Files API block must be the tenant's (app/services/relay_scope.py).
        await self._scope.check(tenant_id, anthropic_refs(params))
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        try:
            relayed = await provider.relay("POST", path, body=raw_body, headers=forwarded, stream=bool(params.get("stream")))
        except UpstreamError as error:
            raise api_error(error) from None
        return self._scope.watch(tenant_id, "anthropic", relayed) if _makes_containers(params) else relayed

    def _chat_params(self, params: dict) -> dict:
        chat = translate.messages_to_chat_request(params)
        chat["model"] = params["model"]
        return chat

    async def create(self, tenant_id: str, params: dict) -> dict:
        completion = await self._inference.call(tenant_id, "chat", self._chat_params(params))
        return translate.chat_completion_to_message(completion, model=params["model"])

    async def create_stream(self, tenant_id: str, params: dict) -> AsyncIterator[tuple[str, dict]]:
        chat = {**self._chat_params(params), "stream": True, "stream_options": {"include_usage": True}}
        chunks = await self._inference.stream(tenant_id, "chat_stream", chat)
        input_tokens = count_chat_tokens(chat["messages"], chat.get("tools"))
        return translate.chat_chunks_to_messages_stream(chunks, model=params["model"], input_tokens=input_tokens)

    def count_tokens(self, tenant_id: str, params: dict) -> dict:
        if not isinstance(params.get("model"), str) or not isinstance(params.get("messages"), list):
            raise invalid_request("model and messages are required", param="messages")
        self._inference.provider_for(tenant_id, params["model"])
        chat = translate.messages_to_chat_request({**params, "max_tokens": params.get("max_tokens") or 1})
        return {"input_tokens": count_chat_tokens(chat["messages"], chat.get("tools"))}
