"""Model routing end to end: the official SDKs against a live Understudy whose configuration sends gpt-*
to an OpenAI-compatible upstream, claude-* to an Anthropic one and gemini-* to a Gemini one (all three
the same real fake upstream on loopback), everything else to the offline model.

Same protocol on both sides -> relayed as it is (the provider's key instead of the client's); different
protocols -> translated both ways; upstream errors reach each client in its own protocol's error shape."""
from __future__ import annotations

import json
import time

import anthropic
import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env, vector_for

KEY = "sk-upstream-fixed-key"  # the only key the fake accepts: the server must send it, not the client's
SYSTEM, HELLO = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look things up.",
                                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}], "systemInstruction": {"parts": [{"text": "Be brief."}]},
               "generationConfig": {"maxOutputTokens": 12}}
ANTHROPIC_ORDER = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(chunks=5, api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    providers = [{"name": "up-openai", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY},
                 {"name": "up-anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": KEY},
                 {"name": "up-gemini", "kind": "gemini", "base_url": upstream.url, "api_key": KEY}]
    routes = [{"model": ["gpt-*", "text-embedding-3-small"], "provider": "up-openai"},
              {"model": "claude-*", "provider": "up-anthropic"}, {"model": "gemini-*", "provider": "up-gemini"}]
    env = upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="1")  # two attempts in all
    srv = start_server(tmp_path_factory.mktemp("routing"), env)
    yield srv
    srv.stop()


@pytest.fixture
def fake(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def oa(server, key):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def ac(server, key):
    with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def raw(server, key):
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}", "x-goog-api-key": key}, timeout=10) as client:
        yield client


def chunk_text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def sse_data(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def gemini_text(responses: list[dict]) -> str:
    return "".join(p.get("text", "") for r in responses for c in r["candidates"] for p in c["content"]["parts"])


def deduplicated(types: list[str]) -> list[str]:
    return [t for i, t in enumerate(types) if not i or types[i - 1] != t]


# ---- OpenAI clients, OpenAI-compatible upstream: relayed ----

def test_openai_chat_is_relayed(oa, raw, fake, key):
    params = {"model": "gpt-4o-mini", "messages": [SYSTEM, HELLO], "max_tokens": 9, "temperature": 0.25}
    completion = oa.chat.completions.create(**params)
    [sent] = fake.requests
    assert (sent.path, sent.json()) == ("/v1/chat/completions", params)
    assert sent.headers["authorization"] == f"Bearer {KEY}" and key not in json.dumps(sent.headers)
    assert completion.choices[0].message.content == fake.text()
    assert (completion.id, completion.system_fingerprint) == ("chatcmpl-fake", "fp_fake")
    # byte for byte both ways: odd spacing reaches the fake untouched, the fake's json.dumps spacing comes back
    body = b'{"messages" :[ {"role":"user","content":"Hi"} ],   "model":"gpt-4o-mini"}'
    response = raw.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200 and fake.requests[-1].body == body
    assert response.text.startswith('{"id": "chatcmpl-fake", "created": ')


def test_openai_chat_stream_is_relayed(oa, raw, fake):
    params = {"model": "gpt-4.1", "messages": [HELLO], "stream": True, "stream_options": {"include_usage": True}}
    chunks = list(oa.chat.completions.create(**params))
    assert fake.requests[0].json() == params and fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert chunk_text(chunks) == fake.text() and len(chunks) == 5 + 3  # role, 5 pieces, finish, usage
    assert {c.id for c in chunks} == {"chatcmpl-fake"} and chunks[-1].usage.completion_tokens == 5
    with raw.stream("POST", "/v1/chat/completions", json=params) as response:
        text = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert text.startswith('data: {"id": "chatcmpl-fake"') and text.endswith("data: [DONE]\n\n")


def test_store_goes_through_the_typed_path_and_is_retrievable(oa, fake):
    completion = oa.chat.completions.create(model="gpt-4o", messages=[HELLO], store=True, metadata={"case": "routing"})
    assert completion.choices[0].message.content == fake.text()
    [sent] = fake.requests
    assert sent.json()["messages"] == [HELLO] and sent.headers["authorization"] == f"Bearer {KEY}"
    stored = oa.chat.completions.retrieve(completion.id)
    assert stored.choices[0].message.content == fake.text() and stored.metadata == {"case": "routing"}
    assert [m.content for m in oa.chat.completions.messages.list(completion.id)] == ["Hello"]


def test_legacy_completions_and_embeddings_are_relayed(oa, fake):
    params = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 5}
    assert oa.completions.create(**params).choices[0].text == fake.text()
    assert (fake.requests[-1].path, fake.requests[-1].json()) == ("/v1/completions", params)
    assert "".join(c.choices[0].text for c in oa.completions.create(**params, stream=True) if c.choices) == fake.text()
    params = {"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 4, "encoding_format": "float"}
    embeddings = oa.embeddings.create(**params)
    assert (fake.requests[-1].path, fake.requests[-1].json()) == ("/v1/embeddings", params)
    assert [e.embedding for e in embeddings.data] == [vector_for('"a"', 4), vector_for('"b"', 4)]
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests) and len(fake.requests) == 3


# ---- OpenAI clients, Anthropic upstream: translated ----

def test_openai_chat_on_claude_is_translated(oa, fake):
    completion = oa.chat.completions.create(model="claude-sonnet-4-6", messages=[SYSTEM, HELLO], max_tokens=33, tools=[TOOL])
    [sent] = fake.requests
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == KEY and "authorization" not in sent.headers
    assert sent.headers["anthropic-version"]
    body = sent.json()
    assert (body["system"], body["messages"], body["max_tokens"]) == ("Be brief.", [HELLO], 33)
    assert body["tools"] == [{"name": "lookup", "description": "Look things up.", "input_schema": TOOL["function"]["parameters"]}]
    assert completion.object == "chat.completion" and completion.model == "claude-sonnet-4-6"
    assert completion.choices[0].message.content == fake.text() and completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == 5

    chunks = list(oa.chat.completions.create(model="claude-sonnet-4-6", messages=[HELLO], stream=True))
    assert fake.requests[-1].json()["stream"] is True and chunk_text(chunks) == fake.text()
    assert chunks[-1].choices[0].finish_reason == "stop"

    forced = oa.chat.completions.create(model="claude-haiku-4-5", messages=[HELLO], tools=[TOOL],
                                        tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert fake.requests[-1].json()["tool_choice"] == {"type": "tool", "name": "lookup"}
    [call] = forced.choices[0].message.tool_calls
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"text": fake.text()}
    assert forced.choices[0].finish_reason == "tool_calls"


# ---- Anthropic clients ----

def test_anthropic_messages_on_claude_are_relayed(ac, raw, fake, key):
    params = {"model": "claude-sonnet-4-6", "max_tokens": 20, "system": "Be brief.", "messages": [HELLO]}
    message = ac.messages.create(**params)
    [sent] = fake.requests
    assert (sent.path, sent.query, sent.json()) == ("/v1/messages", "", params)
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == ac.default_headers["anthropic-version"]
    assert key not in json.dumps(sent.headers)
    assert (message.id, message.content[0].text) == ("msg_fake", fake.text())

    with ac.messages.stream(**params) as stream:
        assert "".join(stream.text_stream) == fake.text()
        assert stream.get_final_message().stop_reason == "end_turn"
    assert fake.requests[-1].json() == {**params, "stream": True}

    # This SDK sends betas as a header only; Claude Code also adds ?beta=true, which must reach the upstream too.
    beta = ac.beta.messages.create(**params, betas=["interleaved-thinking-2025-05-14"], extra_query={"beta": "true"})
    assert (fake.requests[-1].path, fake.requests[-1].query) == ("/v1/messages", "beta=true")
    assert fake.requests[-1].headers["anthropic-beta"] == "interleaved-thinking-2025-05-14" and beta.content[0].text == fake.text()

    body = b'{"model":"claude-haiku-4-5",  "max_tokens":7,"messages":[{"role":"user","content":"Hi"}]}'
    response = raw.post("/v1/messages", content=body, headers={"content-type": "application/json", "anthropic-version": "2023-06-01"})
    assert fake.requests[-1].headers["anthropic-version"] == "2023-06-01"  # the client's own, not the provider's default
    assert response.status_code == 200 and fake.requests[-1].body == body and response.text.startswith('{"id": "msg_fake"')


def test_anthropic_messages_on_gpt_are_translated(ac, fake):
    params = {"model": "gpt-4o-mini", "max_tokens": 20, "system": "Be brief.", "messages": [HELLO]}
    message = ac.messages.create(**params)
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json() == {"model": "gpt-4o-mini", "messages": [SYSTEM, HELLO], "max_completion_tokens": 20}
    assert (message.type, message.role, message.model) == ("message", "assistant", "gpt-4o-mini")
    assert message.content[0].text == fake.text() and message.stop_reason == "end_turn" and message.usage.output_tokens == 5

    events = list(ac.messages.create(**params, stream=True))
    assert fake.requests[-1].json()["stream"] is True
    assert deduplicated([e.type for e in events]) == ANTHROPIC_ORDER
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == fake.text()
    with ac.messages.stream(**params) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == fake.text() and final.stop_reason == "end_turn" and final.usage.output_tokens == 5


# ---- Gemini's native endpoint ----

def test_gemini_native_is_relayed(raw, fake, key):
    body = json.dumps(GEMINI_BODY).encode()
    response = raw.post("/v1beta/models/gemini-2.5-flash:generateContent", content=body)
    assert response.status_code == 200, response.text
    [sent] = fake.requests
    assert (sent.path, sent.body, sent.headers["x-goog-api-key"]) == ("/v1beta/models/gemini-2.5-flash:generateContent", body, KEY)
    assert key not in json.dumps(sent.headers)
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == fake.text()

    response = raw.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", content=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert (fake.requests[-1].path, fake.requests[-1].query) == ("/v1beta/models/gemini-2.5-flash:streamGenerateContent", "alt=sse")
    assert gemini_text(sse_data(response.text)) == fake.text()

    response = raw.post("/v1/gemini/gemini-2.5-pro:generateContent", content=body)
    assert fake.requests[-1].path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert response.json()["candidates"][0]["content"]["parts"][0]["text"] == fake.text()

    response = raw.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", content=body)  # no alt=sse: one JSON array
    assert response.status_code == 200 and gemini_text(response.json()) == fake.text()


def test_gemini_native_on_gpt_is_translated(raw, fake):
    response = raw.post("/v1beta/models/gpt-4o-mini:generateContent", json=GEMINI_BODY)
    assert response.status_code == 200, response.text
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json()["messages"] == [SYSTEM, HELLO] and sent.json()["max_completion_tokens"] == 12
    reply = response.json()
    assert reply["candidates"][0]["content"]["parts"][0]["text"] == fake.text() and reply["candidates"][0]["finishReason"] == "STOP"
    assert reply["usageMetadata"]["candidatesTokenCount"] == 5

    response = raw.post("/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse", json=GEMINI_BODY)
    assert fake.requests[-1].json()["stream"] is True
    responses = sse_data(response.text)
    assert gemini_text(responses) == fake.text() and responses[-1]["usageMetadata"]["candidatesTokenCount"] == 5

    response = raw.post("/v1/gemini/gpt-4o-mini:streamGenerateContent", json=GEMINI_BODY)
    assert gemini_text(response.json()) == fake.text() and fake.requests[-1].path == "/v1/chat/completions"


# ---- upstream errors ----

def test_429_is_retried_after_retry_after(oa, fake):
    fake.fail_next(1, 429, retry_after=1)
    started = time.monotonic()
    completion = oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO])
    assert completion.choices[0].message.content == fake.text() and len(fake.requests) == 2
    assert time.monotonic() - started >= 0.9


def test_persistent_500_is_an_openai_error(oa, fake):
    for model in ("gpt-4o-mini", "claude-sonnet-4-6"):  # relayed, translated
        fake.reset()
        fake.fail_next(5, 500)
        with pytest.raises(openai.InternalServerError) as caught:
            oa.chat.completions.create(model=model, messages=[HELLO])
        assert len(fake.requests) == 2
        error = assert_openai_error(caught.value.response, 500, type_="server_error")
        assert "Injected failure 500." in error["message"]


def test_persistent_500_is_an_anthropic_error_on_the_translated_path(ac, fake):
    fake.fail_next(5, 500)
    with pytest.raises(anthropic.InternalServerError) as caught:
        ac.messages.create(model="gpt-4o-mini", max_tokens=5, messages=[HELLO])
    assert len(fake.requests) == 2 and fake.requests[0].path == "/v1/chat/completions"
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error" and "Injected failure 500." in body["error"]["message"]


def test_persistent_500_is_a_gemini_error_on_the_translated_path(raw, fake):
    fake.fail_next(5, 500)
    response = raw.post("/v1beta/models/gpt-4o-mini:generateContent", json=GEMINI_BODY)
    assert response.status_code == 500 and len(fake.requests) == 2
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and (error["code"], error["status"]) == (500, "INTERNAL")
    assert "Injected failure 500." in error["message"]


def test_400_is_passed_through_without_retry(oa, ac, fake):
    fake.fail_next(1, 400)
    with pytest.raises(openai.BadRequestError) as caught:
        oa.chat.completions.create(model="claude-sonnet-4-6", messages=[HELLO])
    assert len(fake.requests) == 1 and "Injected failure 400." in caught.value.message
    fake.fail_next(1, 400)
    with pytest.raises(anthropic.BadRequestError) as caught:
        ac.messages.create(model="gpt-4o-mini", max_tokens=5, messages=[HELLO])
    assert len(fake.requests) == 2 and caught.value.response.json()["error"]["type"] == "invalid_request_error"


def test_relayed_4xx_keeps_the_upstream_status_and_body(oa, ac, raw, fake):
    body = {"error": {"message": "You may not.", "type": "permission_denied", "param": None, "code": "nope"}}
    fake.fail_next(1, 403, body=body)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO])
    assert caught.value.response.json() == body and len(fake.requests) == 1
    body = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-nope"}, "request_id": "req_1"}
    fake.fail_next(1, 404, body=body)
    with pytest.raises(anthropic.NotFoundError) as caught:
        ac.messages.create(model="claude-nope", max_tokens=5, messages=[HELLO])
    assert caught.value.response.json() == body and len(fake.requests) == 2
    body = {"error": {"code": 400, "message": "Bad contents.", "status": "INVALID_ARGUMENT", "details": []}}
    fake.fail_next(1, 400, body=body)
    response = raw.post("/v1beta/models/gemini-2.5-flash:generateContent", json=GEMINI_BODY)
    assert (response.status_code, response.json()) == (400, body)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"])
def test_dropped_stream_ends_with_an_error(oa, fake, model):
    fake.drop_next(1, after_chunks=5)  # a few text pieces in either protocol
    started, received = time.monotonic(), []
    with pytest.raises(openai.APIConnectionError):  # the server cut the connection short too
        for chunk in oa.chat.completions.create(model=model, messages=[HELLO], stream=True):
            received.append(chunk)
    assert time.monotonic() - started < 5  # the client timeout is 10 s: no hang
    text = chunk_text(received)
    assert text.startswith("tok0 tok1 ") and fake.text().startswith(text) and text != fake.text()


# ---- offline routing ----

def test_unrouted_models_stay_offline(oa, raw, fake):
    completion = oa.chat.completions.create(model="o3", messages=[HELLO])
    assert completion.model == "o3" and completion.choices[0].message.content and not fake.requests
    response = raw.post("/v1/chat/completions", json={"model": "no-such-model", "messages": [HELLO]})
    assert_openai_error(response, 404, code="model_not_found")
    assert not fake.requests


# ---- Assistants runs against upstreams ----

@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-6"])
def test_runs_execute_on_the_routed_upstream(oa, fake, model):
    """A run's model call goes where the model is routed (through translation for Anthropic), tool calls included."""
    assistant = oa.beta.assistants.create(model=model, instructions="Be brief.", tools=[TOOL])
    run = oa.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [HELLO]}, poll_interval_ms=50)
    assert run.status == "completed" and run.usage.completion_tokens > 0
    reply = oa.beta.threads.messages.list(run.thread_id, run_id=run.id).data[0]
    assert reply.content[0].text.value == fake.text()
    sent = fake.requests[-1].json()
    assert sent["stream"] is True and any("Be brief." in json.dumps(m) for m in sent.get("messages", []) + [sent.get("system", "")])
    run = oa.beta.threads.runs.create_and_poll(thread_id=run.thread_id, assistant_id=assistant.id, tool_choice="required", poll_interval_ms=50)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"text": fake.text()}


def test_upstream_failure_fails_the_run(oa, fake):
    assistant = oa.beta.assistants.create(model="gpt-4o-mini")
    fake.fail_next(2, 503)  # both attempts
    run = oa.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [HELLO]}, poll_interval_ms=50)
    assert run.status == "failed" and run.failed_at and run.last_error.code == "server_error"
    assert "Injected failure 503" in run.last_error.message
    fake.fail_next(2, 429)
    run = oa.beta.threads.runs.create_and_poll(thread_id=run.thread_id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"
