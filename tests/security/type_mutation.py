"""A type-mutation fuzzer: every field of a valid request, replaced by values of other JSON types.

Why: a client mistake must be a 4xx in the protocol's own error shape, never a 500. Valid requests to
every model endpoint we route are taken apart field by field (each key and list index, at every depth):
the value is replaced by null, a boolean, numbers (zero, negative, fractional, beyond 64 bits, 1e308),
strings, lists, objects and a deeply nested list, or the key is removed. Each answer must be < 500, and
an error must be in the endpoint's protocol shape (OpenAI's `{"error": {...}}`, Anthropic's
`{"type": "error", "error": {...}}`).

Used by tests/security/test_fuzz.py (a deterministic sample) and runnable whole against a server:

    .venv/bin/python -m tests.security.type_mutation http://127.0.0.1:8000 [--all]
"""
from __future__ import annotations

import copy
import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import httpx

_SCHEMA = {"type": "object", "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 20},
                                            "days": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 7}, "minItems": 1}},
           "required": ["city"]}
_STRICT = {"type": "object", "properties": {"answer": {"type": "string"}, "score": {"type": "number"}},
           "required": ["answer", "score"], "additionalProperties": False}
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
_ANTHROPIC_MESSAGES = [
    {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris? get_weather"},
                                 {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _PNG}},
                                 {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a doc"}, "title": "t"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                      {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}], "is_error": False},
                                 {"type": "text", "text": "And tomorrow?"}]},
]
_ANTHROPIC = {
    "model": "claude-sonnet-4-5", "system": [{"type": "text", "text": "Be brief."}], "messages": _ANTHROPIC_MESSAGES,
    "tools": [{"name": "get_weather", "description": "The weather", "input_schema": _SCHEMA}],
    "tool_choice": {"type": "auto"}, "stop_sequences": ["END"], "temperature": 0.5, "metadata": {"user_id": "u1"},
}
_FUNCTION = {"type": "function", "function": {"name": "get_weather", "description": "The weather", "parameters": _SCHEMA}}
_RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "out", "schema": _STRICT, "strict": True}}


@dataclass
class Endpoint:
    name: str
    path: str  # may name {thread_id}, {assistant_id}, {conversation_id}: made by `setup`
    body: dict
    protocol: str = "openai"
    skip: tuple[str, ...] = ()  # paths (dotted) not to mutate, e.g. `stream`, whose mutation only changes the answer's kind
    extra: dict = field(default_factory=dict)


ENDPOINTS = [
    Endpoint("chat", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "max_completion_tokens": 64, "n": 1, "temperature": 0.5, "seed": 1, "logprobs": True, "top_logprobs": 2,
        "stop": ["\n\n"], "metadata": {"k": "v"}, "tools": [_FUNCTION], "tool_choice": "auto", "parallel_tool_calls": True,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris? get_weather"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}", "detail": "low"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "And tomorrow? get_weather"},
        ]}),
    Endpoint("chat_structured", "/v1/chat/completions", {
        "model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}, "response_format": _RESPONSE_FORMAT,
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "json"}]}, {"role": "user", "content": "Rate Paris."}]},
        skip=("stream",)),
    Endpoint("completions", "/v1/completions", {
        "model": "gpt-3.5-turbo-instruct", "prompt": ["Say this is a test", "Another"], "max_tokens": 16, "n": 1, "logprobs": 2,
        "echo": True, "stop": ["."], "temperature": 0.5, "best_of": 1, "logit_bias": {"50256": -100}}),
    Endpoint("embeddings", "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["hello world", "goodbye"], "dimensions": 8,
                                              "encoding_format": "float"}),
    Endpoint("moderations", "/v1/moderations", {"model": "omni-moderation-latest", "input": [
        {"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_PNG}"}}]}),
    Endpoint("responses", "/v1/responses", {
        "model": "gpt-4o-mini", "instructions": "Be brief.", "max_output_tokens": 64, "temperature": 0.5, "metadata": {"k": "v"}, "store": True,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Please lookup Paris"}]},
                  {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "found"},
                  {"role": "user", "content": "lookup again"}],
        "tools": [{"type": "function", "name": "lookup", "parameters": _SCHEMA, "strict": False}], "tool_choice": "auto"}),
    Endpoint("responses_structured", "/v1/responses", {
        "model": "gpt-4o-mini", "stream": True, "input": "Rate Paris.",
        "text": {"format": {"type": "json_schema", "name": "out", "schema": _STRICT, "strict": True}}}, skip=("stream",)),
    Endpoint("responses_input_tokens", "/v1/responses/input_tokens", {
        "model": "gpt-4o-mini", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "tools": [{"type": "function", "name": "lookup", "parameters": _SCHEMA}]}),
    Endpoint("responses_hosted_tools", "/v1/responses", {
        "model": "gpt-4o-mini", "input": "hello", "include": ["code_interpreter_call.outputs"],
        "tools": [{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "1g"}},
                  {"type": "shell", "environment": {"type": "container_auto"}}]}),
    Endpoint("containers", "/v1/containers", {"name": "work", "expires_after": {"anchor": "last_active_at", "minutes": 5}, "memory_limit": "1g",
                                              "network_policy": {"type": "disabled"}}),
    Endpoint("conversations", "/v1/conversations", {"metadata": {"k": "v"}, "items": [
        {"type": "message", "role": "user", "content": "hi"}, {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello"}]}]}),
    Endpoint("conversation_items", "/v1/conversations/{conversation_id}/items", {"items": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]}),
    Endpoint("messages", "/v1/messages", {**_ANTHROPIC, "max_tokens": 64}, protocol="anthropic"),
    Endpoint("messages_structured", "/v1/messages", {
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "Rate Paris."}],
        "output_config": {"format": {"type": "json_schema", "schema": _STRICT}}}, protocol="anthropic", skip=("stream",)),
    Endpoint("count_tokens", "/v1/messages/count_tokens", dict(_ANTHROPIC), protocol="anthropic"),
    Endpoint("message_batches", "/v1/messages/batches", {"requests": [
        {"custom_id": "a", "params": {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}}]},
        protocol="anthropic"),
    Endpoint("images", "/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "n": 1, "size": "256x256", "response_format": "b64_json",
                                                  "user": "u"}),
    Endpoint("speech", "/v1/audio/speech", {"model": "tts-1", "input": "Hello there.", "voice": "alloy", "response_format": "wav", "speed": 1.0}),
    Endpoint("chatkit_sessions", "/v1/chatkit/sessions", {"user": "u", "workflow": {"id": "wf_1", "version": "1", "state_variables": {"a": 1},
              "tracing": {"enabled": True}}, "expires_after": {"anchor": "created_at", "seconds": 60}, "rate_limits": {"max_requests_per_1_minute": 5},
              "chatkit_configuration": {"file_upload": {"enabled": True, "max_file_size": 10, "max_files": 2}, "history": {"recent_threads": 3}}}),
    Endpoint("chatkit_threads_record", "/_understudy/v1/chatkit/threads", {"session_id": "cksess_x", "title": "t",
              "messages": [{"role": "user", "text": "hi"}]}),
    Endpoint("assistants", "/v1/assistants", {
        "model": "gpt-4o-mini", "name": "a", "instructions": "Be brief.", "tools": [_FUNCTION], "response_format": _RESPONSE_FORMAT,
        "metadata": {"k": "v"}, "temperature": 0.5, "top_p": 1}),
    Endpoint("threads", "/v1/threads", {"metadata": {"k": "v"}, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "metadata": {"k": "v"}}]}),
    Endpoint("runs", "/v1/threads/{thread_id}/runs", {
        "assistant_id": "{assistant_id}", "instructions": "Be brief.", "additional_messages": [{"role": "user", "content": "get_weather in Paris"}],
        "tools": [_FUNCTION], "response_format": "auto", "max_completion_tokens": 64, "temperature": 0.5, "metadata": {"k": "v"}}),
    Endpoint("thread_and_run", "/v1/threads/runs", {
        "assistant_id": "{assistant_id}", "thread": {"messages": [{"role": "user", "content": "hi"}]}, "response_format": _RESPONSE_FORMAT,
        "tools": [_FUNCTION], "tool_choice": "auto"}),
    Endpoint("evals", "/v1/evals", {
        "name": "e", "metadata": {"k": "v"},
        "data_source_config": {"type": "custom", "item_schema": {"type": "object"}, "include_sample_schema": True},
        "testing_criteria": [
            {"type": "string_check", "name": "s", "input": "{{sample.output_text}}", "reference": "{{item.a}}", "operation": "ilike"},
            {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}", "reference": "x", "evaluation_metric": "bleu", "pass_threshold": 0.5},
            {"type": "score_model", "name": "m", "model": "gpt-4o-mini", "range": [0, 1], "pass_threshold": 0.5,
             "input": [{"role": "user", "content": "{{item.a}}"}]},
            {"type": "label_model", "name": "l", "model": "gpt-4o-mini", "labels": ["a", "b"], "passing_labels": ["a"],
             "input": [{"role": "user", "content": "{{item.a}}"}]}]}),
    Endpoint("eval_runs", "/v1/evals/{eval_id}/runs", {
        "name": "r", "metadata": {"k": "v"}, "data_source": {
            "type": "completions", "model": "gpt-4o-mini", "sampling_params": {"temperature": 0.5, "max_completion_tokens": 16, "seed": 1},
            "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.a}}"}]},
            "source": {"type": "file_content", "content": [{"item": {"a": "hi"}}]}}}),
    Endpoint("graders_run", "/v1/fine_tuning/alpha/graders/run", {
        "model_sample": "hello", "item": {"a": "hello"}, "grader": {
            "type": "multi", "name": "m", "calculate_output": "0.5 * s + 0.5 * t", "graders": {
                "s": {"type": "string_check", "name": "s", "input": "{{sample.output_text}}", "reference": "{{item.a}}", "operation": "eq"},
                "t": {"type": "text_similarity", "name": "t", "input": "{{sample.output_text}}", "reference": "hi", "evaluation_metric": "rouge_l"}}}}),
]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# name -> replacement (a value of another JSON type than most fields have, or an extreme of one)
MUTANTS: dict[str, Any] = {
    "null": None, "true": True, "zero": 0, "negative": -1, "fraction": 2.5, "huge_int": 10**30, "huge_float": 1e308,
    "empty_string": "", "string": "x", "empty_list": [], "list": [1, "x"], "empty_object": {}, "object": {"x": 1},
    "deep": _nested(64), "deeper": _nested(930),  # JSON decoding refuses ~1,000 levels; code that recurses must not
}
_MISSING = object()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every key / index path of a JSON value, outermost first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from paths(item, (*prefix, index))


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def mutated(body: dict, path: tuple, replacement: Any) -> dict:
    out = copy.deepcopy(body)
    parent = _get(out, path[:-1])
    if replacement is _MISSING:
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = replacement  # shared, never changed: only serialised
    return out


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def cases(endpoint: Endpoint, ids: dict[str, str], *, sample: int | None = None) -> Iterator[tuple[str, dict]]:
    """(case id, body) for every path × mutant of another type (and the key removed). `sample`: keep only
    that many mutants per path, chosen by a hash of the path (deterministic, different per path)."""
    body = _fill(endpoint.body, ids)
    for path in paths(body):
        if dotted(path) in endpoint.skip:
            continue
        original = _get(body, path)
        names = [n for n, v in MUTANTS.items() if _kind(v) != _kind(original) or n in ("huge_int", "huge_float", "negative")]
        names = [n for n in names if MUTANTS[n] != original]
        if sample is not None:
            start = int.from_bytes(hashlib.sha256(dotted(path).encode()).digest()[:4], "big") % len(names)
            names = (names[start:] + names[:start])[:sample]
        for name in names:
            yield f"{dotted(path)}={name}", mutated(body, path, MUTANTS[name])
        yield f"{dotted(path)}=missing", mutated(body, path, _MISSING)


def setup(client: httpx.Client) -> dict[str, str]:
    """The objects the endpoints' paths name."""
    assistant = client.post("/v1/assistants", json={"model": "gpt-4o-mini", "instructions": "Be brief."})
    thread = client.post("/v1/threads", json={})
    conversation = client.post("/v1/conversations", json={})
    for response in (assistant, thread, conversation):
        response.raise_for_status()
    made = client.post("/v1/evals", json={"name": "e", "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
                                          "testing_criteria": [{"type": "string_check", "name": "s", "input": "{{sample.output_text}}",
                                                                "reference": "{{item.a}}", "operation": "eq"}]})
    made.raise_for_status()
    return {"assistant_id": assistant.json()["id"], "thread_id": thread.json()["id"], "conversation_id": conversation.json()["id"],
            "eval_id": made.json()["id"]}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def error_shape_problem(protocol: str, response: httpx.Response) -> str | None:
    """Why a 4xx body is not the protocol's error shape, or None."""
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if protocol == "anthropic":
        error = body.get("error") if isinstance(body, dict) else None
        if not (isinstance(body, dict) and body.get("type") == "error" and set(body) <= {"type", "error", "request_id"}
                and isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str) and error["message"]):
            return f"not Anthropic's error shape: {str(body)[:200]}"
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(error, dict)
            and set(error) == {"message", "type", "param", "code"} and isinstance(error["message"], str) and error["message"]):
        return f"not OpenAI's error shape: {str(body)[:200]}"
    return None


def send(client: httpx.Client, endpoint: Endpoint, body: dict, ids: dict[str, str]) -> httpx.Response:
    path = endpoint.path.format(**ids)
    content = json.dumps(body).encode()
    return client.post(path, content=content, headers={"content-type": "application/json"})


def check(client: httpx.Client, endpoint: Endpoint, body: dict, ids: dict[str, str]) -> str | None:
    """A problem with the answer to `body` (a 5xx, a wrong error shape), or None."""
    response = send(client, endpoint, body, ids)
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        return error_shape_problem(endpoint.protocol, response)
    return None


def client_for(base_url: str, api_key: str = "sk-fuzz-types") -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}", "x-api-key": api_key,
                                                    "anthropic-version": "2023-06-01"}, timeout=60)


def main(argv: list[str]) -> int:
    base_url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000"
    sample = None if "--all" in argv else 4
    only = [a.split("=", 1)[1] for a in argv if a.startswith("--only=")]
    problems: Counter = Counter()
    sent: Counter = Counter()
    with client_for(base_url) as client:
        ids = setup(client)
        for endpoint in ENDPOINTS:
            if only and endpoint.name not in only:
                continue
            for case, body in cases(endpoint, ids, sample=sample):
                sent[endpoint.name] += 1
                problem = check(client, endpoint, body, ids)
                if problem:
                    problems[endpoint.name] += 1
                    print(f"{endpoint.name} {case}: {problem}", flush=True)
    for name in sent:
        print(f"{name}: {problems[name]} problems / {sent[name]} requests")
    print(f"total: {sum(problems.values())} problems / {sum(sent.values())} requests")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
