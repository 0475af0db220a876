"""A batch's input lines: parsed and checked as OpenAI does (every problem named by its line), and each
one run through the same service path as the live endpoint it names."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from openai.types import completion_create_params, embedding_create_params, moderation_create_params
from openai.types.chat import completion_create_params as chat_params

from app.core.bounds import check_bounds
from app.core.errors import APIError, invalid_request
from app.core.validation import validate_params
from app.inference.translate.anthropic import error_message
from app.services.messages import check_message_params

if TYPE_CHECKING:
    from app.services.chat import ChatService
    from app.services.inference import InferenceService
    from app.services.messages import MessagesService
    from app.services.responses.service import ResponsesService

@dataclass(frozen=True)
class LineServices:
    """The live endpoints' services a batch line runs through (and the inference service, which also
    tells the batch's validation whether its model exists)."""

    chat: ChatService
    responses: ResponsesService
    messages: MessagesService
    inference: InferenceService


ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations")
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_ERRORS = 100


def _error(code: str, message: str, line: int | None, param: str | None = None) -> dict:
    return {"code": code, "message": message, "param": param, "line": line}


def parse_lines(data: bytes, endpoint: str) -> tuple[list[dict], list[dict], str | None]:
    """(lines, errors, model): each line {"line", "custom_id", "body"}; errors name line numbers (from 1)."""
    if len(data) > MAX_BYTES:
        return [], [_error("file_too_large", f"The input file is larger than {MAX_BYTES} bytes.", None)], None
    lines: list[dict] = []
    errors: list[dict] = []
    seen: set[str] = set()
    model = None
    raw_lines = data.split(b"\n")
    for number, raw in enumerate(raw_lines, start=1):
        if len(errors) >= MAX_ERRORS:
            break
        if not raw.strip():
            continue
        try:
            item = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            errors.append(_error("invalid_json_line", "This line is not parseable as valid JSON.", number))
            continue
        if not isinstance(item, dict):
            errors.append(_error("invalid_json_line", "Each line must be a JSON object.", number))
            continue
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(_error("missing_required_parameter", "Missing required parameter: 'custom_id'.", number, "custom_id"))
            continue
        if custom_id in seen:
            errors.append(_error("duplicate_custom_id", f"The custom_id '{custom_id}' is used by more than one request; it must be unique.",
                                 number, "custom_id"))
            continue
        seen.add(custom_id)
        missing = next((name for name in ("method", "url") if item.get(name) is None), None)
        if missing is not None:
            errors.append(_error("missing_required_parameter", f"Missing required parameter: '{missing}'.", number, missing))
            continue
        if item.get("method") != "POST":
            errors.append(_error("invalid_method", f"Invalid value: '{item.get('method')}'. Supported values are: 'POST'.", number, "method"))
            continue
        if item.get("url") != endpoint:
            errors.append(_error("invalid_url", f"The URL '{item.get('url')}' does not match the batch's endpoint '{endpoint}'.", number, "url"))
            continue
        body = item.get("body")
        if not isinstance(body, dict):
            errors.append(_error("missing_required_parameter", "Missing required parameter: 'body' (an object).", number, "body"))
            continue
        problem = _body_problem(body, endpoint)
        if problem is not None:
            errors.append({**problem, "line": number})
            continue
        line_model = body.get("model")
        if isinstance(line_model, str):
            if model is None:
                model = line_model
            elif line_model != model:
                errors.append(_error("mismatched_model", f"The model '{line_model}' differs from the model '{model}' of the batch's other "
                                     "requests: a batch uses one model.", number, "body.model"))
                continue
        lines.append({"line": number, "custom_id": custom_id, "body": body})
    if not errors and len(lines) > MAX_LINES:
        errors.append(_error("too_many_requests", f"A batch can hold at most {MAX_LINES} requests; this file has {len(lines)}.", None))
    if not errors and not lines:
        errors.append(_error("empty_file", "The input file has no requests.", None))
    return lines, errors, model


# What each endpoint's body must hold, checked at validation (as OpenAI does) rather than line by line later.
_REQUIRED = {
    "/v1/chat/completions": ("model", "messages"), "/v1/responses": ("model",), "/v1/embeddings": ("model", "input"),
    "/v1/completions": ("model", "prompt"), "/v1/moderations": ("input",),
}


def _body_problem(body: dict, endpoint: str) -> dict | None:
    if body.get("stream") is True:
        return _error("streaming_unsupported", "Streaming is not supported for batch requests: 'body.stream' must be false or absent.",
                      None, "body.stream")
    for name in _REQUIRED.get(endpoint, ()):
        if body.get(name) is None:
            return _error("invalid_request", f"Missing required parameter: 'body.{name}'.", None, f"body.{name}")
    return None


async def call_line(services: LineServices, tenant: str, endpoint: str, body: dict) -> dict:
    if endpoint == "/v1/chat/completions":
        if body.get("stream"):
            raise invalid_request("Streaming is not supported in a batch.", param="stream", code="invalid_value")
        validate_params(chat_params.CompletionCreateParamsNonStreaming, body)
        check_bounds("chat", body)
        return await services.chat.create(tenant, body)
    if endpoint == "/v1/embeddings":
        validate_params(embedding_create_params.EmbeddingCreateParams, body)
        check_bounds("embeddings", body)
        return await services.inference.call(tenant, "embeddings", body)
    if endpoint == "/v1/completions":
        if body.get("stream"):
            raise invalid_request("Streaming is not supported in a batch.", param="stream", code="invalid_value")
        validate_params(completion_create_params.CompletionCreateParamsNonStreaming, body)
        check_bounds("completions", body)
        return await services.inference.call(tenant, "completions", body)
    if endpoint == "/v1/moderations":
        validate_params(moderation_create_params.ModerationCreateParams, body)
        return await services.inference.moderations(tenant, body)
    if endpoint == "/v1/responses":
        if body.get("stream") or body.get("background"):
            raise invalid_request("Streaming and background responses are not supported in a batch.", param="stream", code="invalid_value")
        if "model" not in body:
            raise invalid_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        check_bounds("responses", body)
        params = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        return await services.responses.create(tenant, params, False)
    if endpoint == "/v1/messages":
        return await _message(services, tenant, body)
    raise invalid_request(f"Unsupported endpoint '{endpoint}'.", param="url")


# What an Anthropic upstream is sent with a relayed batch request (its auth is the provider's own).
_ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


async def _message(services: LineServices, tenant: str, body: dict) -> dict:
    """An Anthropic Message Batch request: relayed as it is to an Anthropic upstream, translated for any other."""
    check_message_params(body)
    if body.get("stream"):
        raise invalid_request("stream: Streaming is not supported in a Message Batch.", param="stream")
    relayed = await services.messages.relay(tenant, body, msgspec.json.encode(body), path="/v1/messages", headers=_ANTHROPIC_HEADERS)
    if relayed is None:
        return await services.messages.create(tenant, body)
    raw = b"".join([chunk async for chunk in relayed.body])
    if relayed.status_code >= 400:
        raise APIError(error_message(raw), status_code=relayed.status_code, type="server_error" if relayed.status_code >= 500 else "invalid_request_error")
    return msgspec.json.decode(raw)
