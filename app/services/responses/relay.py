"""Responses relayed to an upstream that speaks them (a provider with `responses = true`; OpenAI's own
URL by default): the client's body as it is, our credentials, the upstream's answer (status, headers,
SSE bytes) passed straight back. Nothing of the response is stored here, so its id is the upstream's:
the ids an answer mints are bound to the tenant that created it as they pass (app/services/relay_scope.py),
and only that tenant's requests about them are relayed (`by_id`, and ids named in a relayed body) — the
upstream sees our one key for everyone.

Why relay rather than translate: a translation to chat completions loses what chat cannot say
(reasoning items, hosted tools, the upstream's own storage and `previous_response_id` chains); an
upstream that speaks Responses answers them itself.
"""
from __future__ import annotations

from urllib.parse import quote

from app.inference.base import RelayResponse, UpstreamError
from app.services.inference_errors import api_error


def speaking_provider(inference, model):
    """The provider `model` routes to, when it speaks the Responses API; else None (translated here)."""
    if not isinstance(model, str):
        return None  # the local path reports the bad body
    provider = inference.router.route(model)
    return provider if getattr(provider, "speaks_responses", False) else None


async def relay(provider, method: str, path: str, body: bytes | None, *, content_type: str | None = None,
                stream: bool = False) -> RelayResponse:
    headers = {"content-type": content_type} if content_type and body else {}
    try:
        return await provider.relay(method, path, body=body or None, headers=headers, stream=stream)
    except UpstreamError as error:  # unreachable, after the retries
        raise api_error(error) from None


async def create(inference, path: str, body: dict, raw: bytes) -> RelayResponse | None:
    """POST /responses (or /responses/input_tokens) relayed, when the body's model routes to a provider
    that speaks Responses."""
    provider = speaking_provider(inference, body.get("model"))
    if provider is None:
        return None
    return await relay(provider, "POST", path, raw, content_type="application/json", stream=body.get("stream") is True)


async def by_id(inference, method: str, response_id: str, suffix: str = "", query: str = "", body: bytes = b"",
                content_type: str | None = None) -> RelayResponse | None:
    """A request about a response this server did not store, relayed to the first provider that speaks
    Responses; None when there is none."""
    provider = inference.router.responses_provider() if hasattr(inference.router, "responses_provider") else None
    if provider is None:
        return None
    path = f"/responses/{quote(response_id, safe='')}{suffix}" + (f"?{query}" if query else "")
    return await relay(provider, method, path, body, content_type=content_type, stream="stream=true" in query)
