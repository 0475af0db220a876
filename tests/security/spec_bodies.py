"""Request bodies drawn from the official OpenAPI specs (../shared), for tests/security/test_fuzz.py.

Each operation's request schema is taken from the spec as published (OpenAI's, and the Anthropic mirror),
its `$ref`s inlined a few levels deep (deeper, and on recursion, any JSON value: fuzzing wants the odd
shapes too), OpenAPI-only keywords and formats hypothesis-jsonschema does not know dropped. Bodies are
spec-valid, so most fields are plausible; `model` is usually replaced by one this server answers, so a
body gets past the model lookup into the code that reads the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.support.openapi import _spec

_DROP = {"description", "title", "example", "examples", "discriminator", "deprecated", "readOnly", "writeOnly", "externalDocs",
         "default", "$comment", "contentEncoding", "contentMediaType"}
_FORMATS = {"date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname"}
INLINE_DEPTH = 3  # deeper subschemas become "any JSON value" (hypothesis-jsonschema slows down fast with depth)


@dataclass(frozen=True)
class Operation:
    name: str
    spec: str  # "openai" | "anthropic"
    schema: str  # components/schemas name of the request body
    path: str  # our route; may name {thread_id}, {assistant_id}, {conversation_id}
    model: str | None = None  # what `model` usually becomes (None: the spec's own values, e.g. an enum of real ids)

    @property
    def protocol(self) -> str:
        return self.spec


OPERATIONS = [
    Operation("chat", "openai", "CreateChatCompletionRequest", "/v1/chat/completions", "gpt-4o-mini"),
    Operation("completions", "openai", "CreateCompletionRequest", "/v1/completions", "gpt-3.5-turbo-instruct"),
    Operation("embeddings", "openai", "CreateEmbeddingRequest", "/v1/embeddings", "text-embedding-3-small"),
    Operation("moderations", "openai", "CreateModerationRequest", "/v1/moderations", "omni-moderation-latest"),
    Operation("responses", "openai", "CreateResponse", "/v1/responses", "gpt-4o-mini"),
    Operation("responses_input_tokens", "openai", "TokenCountsBody", "/v1/responses/input_tokens", "gpt-4o-mini"),
    Operation("realtime_client_secrets", "openai", "RealtimeCreateClientSecretRequest", "/v1/realtime/client_secrets"),
    Operation("realtime_sessions", "openai", "RealtimeSessionCreateRequest", "/v1/realtime/sessions"),
    Operation("containers", "openai", "CreateContainerBody", "/v1/containers"),
    Operation("conversations", "openai", "CreateConversationBody", "/v1/conversations"),
    Operation("chatkit_sessions", "openai", "CreateChatSessionBody", "/v1/chatkit/sessions"),
    Operation("images", "openai", "CreateImageRequest", "/v1/images/generations", "dall-e-2"),
    Operation("speech", "openai", "CreateSpeechRequest", "/v1/audio/speech", "gpt-4o-mini-tts"),
    Operation("videos", "openai", "CreateVideoJsonBody", "/v1/videos", "sora-2"),
    Operation("assistants", "openai", "CreateAssistantRequest", "/v1/assistants", "gpt-4o-mini"),
    Operation("threads", "openai", "CreateThreadRequest", "/v1/threads"),
    Operation("thread_and_run", "openai", "CreateThreadAndRunRequest", "/v1/threads/runs", "gpt-4o-mini"),
    Operation("runs", "openai", "CreateRunRequest", "/v1/threads/{thread_id}/runs", "gpt-4o-mini"),
    Operation("evals", "openai", "CreateEvalRequest", "/v1/evals"),
    Operation("graders_run", "openai", "RunGraderRequest", "/v1/fine_tuning/alpha/graders/run"),
    Operation("graders_validate", "openai", "ValidateGraderRequest", "/v1/fine_tuning/alpha/graders/validate"),
    Operation("messages", "anthropic", "CreateMessageParams", "/v1/messages", "claude-sonnet-4-5"),
    Operation("count_tokens", "anthropic", "CountMessageTokensParams", "/v1/messages/count_tokens", "claude-sonnet-4-5"),
    Operation("message_batches", "anthropic", "CreateMessageBatchParams", "/v1/messages/batches", "claude-sonnet-4-5"),
]


def inline(spec: dict, node: Any, depth: int = 0, stack: tuple = ()) -> Any:
    """`node` with its `$ref`s replaced by their targets, up to INLINE_DEPTH."""
    if isinstance(node, list):
        return [inline(spec, v, depth, stack) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack or depth >= INLINE_DEPTH:
            return {}
        target = inline(spec, spec["components"]["schemas"][name], depth + 1, (*stack, name))
        rest = inline(spec, {k: v for k, v in node.items() if k != "$ref"}, depth, stack)
        return {"allOf": [target, rest]} if rest else target
    out = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-") or (key == "format" and value not in _FORMATS):
            continue
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: inline(spec, v, depth, stack) for k, v in value.items()}
        else:
            out[key] = inline(spec, value, depth, stack)
    return out


def _flattened(schema: dict) -> dict:
    """A top-level `allOf` of objects as one object, so that it can be closed to the fields it names."""
    parts = [_flattened(p) for p in schema.get("allOf", ()) if isinstance(p, dict)]
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        out["properties"] = {**part.get("properties", {}), **out.get("properties", {})}
        out["required"] = list(dict.fromkeys([*part.get("required", ()), *out.get("required", ())]))
        out.setdefault("type", part.get("type", "object"))
    return out


@cache
def request_schema(operation: Operation) -> dict:
    spec = _spec(operation.spec)
    schema = _flattened(inline(spec, {"$ref": f"#/components/schemas/{operation.schema}"}))
    # Only the fields the spec names at the top: random extra keys would only ever meet "Unknown parameter".
    return {**schema, "additionalProperties": False}


def _with_ids(body: Any, operation: Operation, ids: dict[str, str]) -> Any:
    """The objects the body names that must exist (an assistant), and a model this server answers."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if operation.model is not None:
        body["model"] = operation.model
    if "assistant_id" in body:
        body["assistant_id"] = ids["assistant_id"]
    if operation.name == "message_batches" and isinstance(body.get("requests"), list):
        body["requests"] = [{**r, "params": {**r["params"], "model": operation.model}} if isinstance(r, dict) and isinstance(r.get("params"), dict) else r
                            for r in body["requests"]]
    return body


def bodies(operation: Operation, ids: dict[str, str]) -> st.SearchStrategy:
    """Spec-valid bodies; three in four with our model and ids, the rest as drawn."""
    drawn = st.tuples(from_schema(request_schema(operation)), st.sampled_from((True, True, True, False)))
    return drawn.map(lambda pair: _with_ids(pair[0], operation, ids) if pair[1] else pair[0])
