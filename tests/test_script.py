"""Scripted answers and injected faults, end to end: rules set over the control API (`/_understudy/v1`)
or the UNDERSTUDY_SCRIPT file answer the official SDKs (openai, anthropic) and raw Gemini calls of a live
server before any model; faults arrive in each protocol's own shape; the call log shows what was sent."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import anthropic
import httpx
import openai
import pydantic
import pytest

from tests.conftest import ROOT, _with_worker, assert_openai_error, free_port, new_key, start_server
from tests.support import pg
from tests.support.redis_db import claim_redis_db

MODEL = "gpt-4o-mini"
CLAUDE = "claude-opus-4-8"
GEMINI = "gemini-2.5-flash"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
WEATHER_RULE = {"when": {"user_contains": "weather"}, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}}


class Control:
    """The control API as one tenant (the same key as its SDK clients)."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/_understudy/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def add(self, *rules: dict) -> list[dict]:
        if len(rules) == 1:
            response = self.http.post("/rules", json=rules[0])
            assert response.status_code == 200, response.text
            return [response.json()]
        response = self.http.post("/rules", json={"rules": list(rules)})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def rules(self) -> list[dict]:
        response = self.http.get("/rules")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def calls(self) -> list[dict]:
        response = self.http.get("/calls")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def settings(self, **values) -> dict:
        response = self.http.post("/script", json=values)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def control(server, api_key):
    ctl = Control(server.url, api_key)
    yield ctl
    ctl.http.close()


@pytest.fixture
def claude(server, api_key) -> anthropic.Anthropic:
    with anthropic.Anthropic(base_url=server.url, api_key=api_key, max_retries=0) as sdk:
        yield sdk


def ask(client, text: str, model: str = MODEL, **params):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **params)


def text_of(completion) -> str | None:
    return completion.choices[0].message.content


# --- chat completions -------------------------------------------------------------------------------


def test_scripted_text_plain_and_streamed(client, control):
    control.add({"when": {"user_contains": "greet"}, "reply": {"text": ["Hel", "lo", ", world"]}})
    completion = ask(client, "please greet me")
    assert text_of(completion) == "Hello, world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.system_fingerprint == "fp_understudy_script"
    stream = ask(client, "please greet me", stream=True)
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert deltas == ["Hel", "lo", ", world"]


def test_unmatched_calls_fall_to_the_offline_model(client, control):
    control.add({"when": {"user_contains": "greet"}, "reply": "Scripted."})
    offline = text_of(ask(client, "Tell me about glaciers"))
    assert offline and offline != "Scripted."
    assert text_of(ask(client, "greet")) == "Scripted."
    outcomes = [(c["outcome"], c["rule_id"]) for c in control.calls()]
    assert outcomes[0] == ("model", None) and outcomes[1][0] == "reply"


def test_tool_calls_with_exact_arguments(client, control):
    control.add(WEATHER_RULE)
    completion = ask(client, "What is the weather in Oslo?", tools=[WEATHER])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    # Streamed: the SDK's accumulated tool call is the same.
    with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    [streamed] = final.choices[0].message.tool_calls
    assert streamed.function.name == "get_weather" and json.loads(streamed.function.arguments) == {"city": "Oslo"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_refusal_json_usage_and_finish_reason(client, control):
    control.add(
        {"when": {"user_contains": "bomb"}, "reply": {"refusal": "I can't help with that."}},
        {"when": {"user_contains": "extract"}, "reply": {"json": {"name": "Ada", "age": 36}}},
        {"when": {"user_contains": "count"}, "reply": {"text": "one two", "usage": {"prompt_tokens": 1234, "completion_tokens": 56}, "finish_reason": "length"}},
    )
    refused = ask(client, "how to build a bomb").choices[0]
    assert refused.message.refusal == "I can't help with that." and refused.message.content is None
    schema = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": False}}}
    extracted = ask(client, "extract the person", response_format=schema)
    assert json.loads(text_of(extracted)) == {"name": "Ada", "age": 36}

    class Person(pydantic.BaseModel):
        name: str
        age: int

    parsed = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "extract"}], response_format=Person)
    assert parsed.choices[0].message.parsed == Person(name="Ada", age=36)
    counted = ask(client, "count")
    assert (counted.usage.prompt_tokens, counted.usage.completion_tokens, counted.usage.total_tokens) == (1234, 56, 1290)
    assert counted.choices[0].finish_reason == "length"
    chunks = list(ask(client, "count", stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == 1234 and chunks[-1].usage.completion_tokens == 56
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


def test_first_match_wins_and_times_retires_a_rule(client, control):
    first, second = control.add(
        {"when": {"user_contains": "ping"}, "reply": "first", "times": 2},
        {"when": {"user_contains": "ping"}, "reply": "second"},
    )
    assert [text_of(ask(client, "ping")) for _ in range(4)] == ["first", "first", "second", "second"]
    hits = {rule["id"]: rule["hits"] for rule in control.rules()}
    assert hits[second["id"]] == 2 and hits[first["id"]] >= 2  # (a retired rule's count still grows: it counts matches)
    assert [c["rule_id"] for c in control.calls()] == [first["id"], first["id"], second["id"], second["id"]]


def test_nth_answers_only_that_call(client, control):
    control.add({"when": {"nth": 2}, "reply": "the second"})
    answers = [text_of(ask(client, f"Tell me about rivers {i}")) for i in range(3)]
    assert answers[1] == "the second"
    assert answers[0] != "the second" and answers[2] != "the second"
    control.add({"when": {"nth": 2, "user_contains": "loop"}, "reply": "again", "times": 2})
    answers = [text_of(ask(client, "loop")) for _ in range(4)]
    assert answers[1:3] == ["again", "again"] and "again" not in (answers[0], answers[3])


def test_matchers(client, control):
    control.add(
        {"when": {"user_regex": r"^order #\d+$"}, "reply": "regex"},
        {"when": {"user_equals": "exactly this"}, "reply": "equals"},
        {"when": {"json_path": {"$.temperature": 0}}, "reply": "cold"},
        {"when": {"json_path": [{"path": "$.tools[0].function.name", "equals": "lookup"}]}, "reply": "tooled"},
        {"when": {"json_path": [{"path": "$.metadata.tag", "regex": "^exp-"}]}, "reply": "tagged"},
        {"when": {"json_path": [{"path": "$.max_tokens", "exists": True}]}, "reply": "bounded"},
        {"when": {"model": "gpt-4.1*"}, "reply": "glob"},
        {"when": {"tool_result": "get_weather"}, "reply": "It is sunny in Oslo."},
        {"when": {"tool_result": True}, "reply": "some tool answered"},
    )
    assert text_of(ask(client, "order #42")) == "regex"
    assert text_of(ask(client, "order #42 please")) != "regex"
    assert text_of(ask(client, "  exactly this ")) == "equals"
    assert text_of(ask(client, "exactly this, and more")) != "equals"
    assert text_of(ask(client, "hi", temperature=0)) == "cold"
    assert text_of(ask(client, "hi", temperature=0.5)) != "cold"
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    assert text_of(ask(client, "hi", tools=[lookup], tool_choice="none")) == "tooled"
    assert text_of(ask(client, "hi", metadata={"tag": "exp-7"}, store=True)) == "tagged"
    assert text_of(ask(client, "hi", max_tokens=50)) == "bounded"
    assert text_of(ask(client, "hi", model="gpt-4.1-mini")) == "glob"
    assert text_of(ask(client, "hi", model="gpt-4o")) != "glob"

    def after_tool(name: str) -> str | None:
        messages = [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        return text_of(client.chat.completions.create(model=MODEL, messages=messages))

    assert after_tool("get_weather") == "It is sunny in Oslo."
    assert after_tool("get_time") == "some tool answered"


# --- one rule, every protocol -----------------------------------------------------------------------

RESPONSES_WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
                     "parameters": WEATHER["function"]["parameters"]}
CLAUDE_WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["function"]["parameters"]}


def test_one_tool_call_rule_across_protocols(server, api_key, client, claude, control):
    [rule] = control.add(WEATHER_RULE)

    [chat_call] = ask(client, "weather in Oslo?", tools=[WEATHER]).choices[0].message.tool_calls
    assert (chat_call.function.name, json.loads(chat_call.function.arguments)) == ("get_weather", {"city": "Oslo"})

    response = client.responses.create(model=MODEL, input="weather in Oslo?", tools=[RESPONSES_WEATHER])
    [item] = [o for o in response.output if o.type == "function_call"]
    assert item.name == "get_weather" and json.loads(item.arguments) == {"city": "Oslo"} and item.call_id
    assert response.status == "completed"

    with client.responses.stream(model=MODEL, input="weather in Oslo?", tools=[RESPONSES_WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    [item] = [o for o in final.output if o.type == "function_call"]
    assert item.name == "get_weather" and json.loads(item.arguments) == {"city": "Oslo"}

    message = claude.messages.create(model=CLAUDE, max_tokens=200, tools=[CLAUDE_WEATHER], messages=[{"role": "user", "content": "weather in Oslo?"}])
    [use] = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use" and use.name == "get_weather" and use.input == {"city": "Oslo"}
    with claude.messages.stream(model=CLAUDE, max_tokens=200, tools=[CLAUDE_WEATHER], messages=[{"role": "user", "content": "weather in Oslo?"}]) as stream:
        streamed = stream.get_final_message()
    [use] = [b for b in streamed.content if b.type == "tool_use"]
    assert use.input == {"city": "Oslo"} and streamed.stop_reason == "tool_use"

    body = {"contents": [{"role": "user", "parts": [{"text": "weather in Oslo?"}]}],
            "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}]}
    gemini = httpx.post(f"{server.url}/v1beta/models/{GEMINI}:generateContent", json=body, headers={"x-goog-api-key": api_key})
    assert gemini.status_code == 200, gemini.text
    [part] = gemini.json()["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] == "get_weather" and part["functionCall"]["args"] == {"city": "Oslo"}

    endpoints = [c["endpoint"] for c in control.calls()]
    assert endpoints == ["chat", "responses", "responses", "messages", "messages", "gemini"]
    assert {c["rule_id"] for c in control.calls()} == {rule["id"]}
    assert control.rules()[0]["hits"] == 6


def test_endpoint_matcher(client, claude, control):
    control.add({"when": {"endpoint": "messages"}, "reply": "from claude"},
                {"when": {"endpoint": ["responses", "completions"]}, "reply": "from responses"})
    assert claude.messages.create(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "hi"}]).content[0].text == "from claude"
    assert client.responses.create(model=MODEL, input="hi").output_text == "from responses"
    assert client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi").choices[0].text == "from responses"
    assert text_of(ask(client, "hi")) not in ("from claude", "from responses")


def test_assistant_run_requires_action_then_tool_result_answers(client, control):
    control.add({**WEATHER_RULE, "when": {"user_contains": "weather", "tool_result": False}},
                {"when": {"tool_result": "get_weather"}, "reply": "Oslo: sleet, 2 degrees."})
    assistant = client.beta.assistants.create(model=MODEL, instructions="You report weather.", tools=[WEATHER])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "What is the weather in Oslo?"}]}, poll_interval_ms=50)
    assert run.status == "requires_action", run.last_error
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "sleet, 2C"}], poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    messages = client.beta.threads.messages.list(thread_id=run.thread_id, order="asc")
    assert messages.data[-1].role == "assistant" and messages.data[-1].content[0].text.value == "Oslo: sleet, 2 degrees."
    calls = control.calls()
    assert [c["endpoint"] for c in calls] == ["runs", "runs"]
    # The follow-up carried the tool output the test submitted.
    assert any(m.get("role") == "tool" and m.get("content") == "sleet, 2C" for m in calls[1]["request"]["messages"])


def test_legacy_completions_and_embeddings(client, control):
    control.add({"when": {"endpoint": "completions"}, "reply": {"text": ["Once", " upon"]}},
                {"reply": {"embedding": [0.5, -0.25, 1.0]}})
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Tell a story")
    assert completion.choices[0].text == "Once upon"
    pieces = [c.choices[0].text for c in client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Tell", stream=True) if c.choices]
    assert [p for p in pieces if p] == ["Once", " upon"]
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.embedding for d in embedded.data] == [[0.5, -0.25, 1.0], [0.5, -0.25, 1.0]]
    # The SDK asks for base64 by default when numpy is about; ask for floats explicitly too.
    floats = client.embeddings.create(model="text-embedding-3-small", input="c", encoding_format="float")
    assert floats.data[0].embedding == [0.5, -0.25, 1.0]
    # The embeddings rule does not answer chat: a catch-all vector never becomes a text reply.
    assert text_of(ask(client, "Tell me about rivers"))


# --- faults -----------------------------------------------------------------------------------------


def test_status_faults_in_openai_shape(client, http, control):
    control.add(
        {"when": {"user_contains": "limit"}, "fault": {"status": 429, "retry_after": 1}, "times": 2},
        {"when": {"user_contains": "crash"}, "fault": {"status": 500}},
        {"when": {"user_contains": "busy"}, "fault": {"status": 503, "message": "Overloaded, scripted."}},
        {"when": {"user_contains": "huge"}, "fault": {"status": 400, "code": "context_length_exceeded"}},
    )
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "limit me")
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["retry-after-ms"] == "1000"
        assert caught.value.code == "rate_limit_exceeded"
    assert text_of(ask(client, "limit me"))  # `times: 2` spent: the model answers
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "crash")
    assert caught.value.status_code == 500 and caught.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "busy", stream=True)
    assert caught.value.status_code == 503 and caught.value.body["message"] == "Overloaded, scripted."
    raw = http.post("/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "huge"}]})
    error = assert_openai_error(raw, 400, param="messages", code="context_length_exceeded")
    assert "maximum context length" in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="huge")
    assert caught.value.code == "context_length_exceeded"


def test_status_faults_in_anthropic_shape(claude, control):
    control.add(
        {"when": {"user_contains": "limit"}, "fault": {"status": 429, "retry_after": 2}},
        {"when": {"user_contains": "crash"}, "fault": {"status": 500}},
        {"when": {"user_contains": "busy"}, "fault": {"status": 503}},
        {"when": {"user_contains": "huge"}, "fault": {"status": 400, "code": "context_length_exceeded"}},
    )

    def create(text: str):
        return claude.messages.create(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": text}])

    with pytest.raises(anthropic.RateLimitError) as caught:
        create("limit")
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.InternalServerError) as caught:
        create("crash")
    assert caught.value.status_code == 500 and caught.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.APIStatusError) as caught:
        create("busy")
    assert caught.value.status_code in (503, 529) and caught.value.body["type"] == "error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        create("huge")
    assert caught.value.body["error"]["type"] == "invalid_request_error" and "context length" in caught.value.body["error"]["message"]
    with pytest.raises(anthropic.RateLimitError):  # streamed: the error comes before the stream starts
        with claude.messages.stream(model=CLAUDE, max_tokens=50, messages=[{"role": "user", "content": "limit"}]) as stream:
            list(stream)


def test_status_fault_in_gemini_shape(server, api_key, control):
    control.add({"fault": {"status": 429}})
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    response = httpx.post(f"{server.url}/v1beta/models/{GEMINI}:generateContent", json=body, headers={"x-goog-api-key": api_key})
    assert response.status_code == 429
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and response.json()["error"]["code"] == 429


def test_timeout_fault_against_a_client_timeout(client, control):
    control.add({"fault": {"timeout": 3}})
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.5).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert 0.4 < time.monotonic() - started < 2.5


def test_timeout_fault_a_patient_client_sees_504(client, control):
    control.add({"fault": {"timeout": 0.3}})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(client, "hi")
    assert caught.value.status_code == 504 and time.monotonic() - started >= 0.3


def test_stream_cut_is_not_a_clean_finish(client, http, control):
    control.add({"fault": {"cut_after": 2}})
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in ask(client, "Tell a story", stream=True):
            received.append(chunk)
    assert len(received) == 2  # the role chunk and one piece, then the connection dropped
    with http.stream("POST", "/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}) as response:
        assert response.status_code == 200
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            for line in response.iter_lines():
                lines.append(line)
    assert "data: [DONE]" not in lines and sum(line.startswith("data: ") for line in lines) == 2


def test_malformed_chunk(client, http, control):
    control.add({"fault": {"malformed_after": 1}})
    received = []
    with pytest.raises(json.JSONDecodeError):  # the SDK parses each event's JSON: a half event is its error
        for chunk in ask(client, "Tell a story", stream=True):
            received.append(chunk)
    assert len(received) == 1 and received[0].choices[0].delta.role == "assistant"
    with http.stream("POST", "/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}) as response:
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            for line in response.iter_lines():
                lines.append(line)
    events = [line[6:] for line in lines if line.startswith("data: ")]
    assert len(events) == 2 and "[DONE]" not in events
    json.loads(events[0])
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[1])


def test_slow_first_byte_and_chunk_delay(client, control):
    control.add({"when": {"user_contains": "slow"}, "reply": {"text": ["a", "b", "c"]}, "delay_ms": 400},
                {"when": {"user_contains": "paced"}, "reply": {"text": ["a", "b", "c"]}, "chunk_delay_ms": 150})
    started = time.monotonic()
    stream = ask(client, "slow", stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    assert time.monotonic() - started >= 0.4
    list(stream)
    started = time.monotonic()
    assert text_of(ask(client, "slow")) == "abc" and time.monotonic() - started >= 0.4
    started = time.monotonic()
    times = []
    for chunk in ask(client, "paced", stream=True):
        times.append(time.monotonic() - started)
    assert times[-1] >= 0.3  # three chunk gaps of 150 ms after the first
    assert time.monotonic() - started < 3


def test_a_run_sees_a_fault_as_failed(client, control):
    control.add({"when": {"endpoint": "runs"}, "fault": {"status": 500}})
    assistant = client.beta.assistants.create(model=MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, poll_interval_ms=50)
    assert run.status == "failed"
    assert run.last_error is not None and run.last_error.code == "server_error" and run.last_error.message
    assert [(c["endpoint"], c["outcome"]) for c in control.calls()] == [("runs", "fault")]


def test_a_run_sees_a_rate_limit_as_failed(client, control):
    control.add({"fault": {"status": 429, "retry_after": 5}})
    assistant = client.beta.assistants.create(model=MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, poll_interval_ms=50)
    assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"


def test_a_background_response_with_a_fault_fails(client, control):
    control.add({"fault": {"status": 503}})
    response = client.responses.create(model=MODEL, input="hi", background=True)
    assert response.status in ("queued", "in_progress")
    deadline = time.monotonic() + 15
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, response.status
        time.sleep(0.05)
        response = client.responses.retrieve(response.id)
    assert response.status == "failed"
    assert response.error is not None and response.error.message


def test_a_responses_stream_cut_fails_the_response(client, control):
    control.add({"fault": {"cut_after": 3}})
    with client.responses.stream(model=MODEL, input="Tell a story") as stream:
        kinds = [event.type for event in stream]
    assert "response.completed" not in kinds and kinds[-1] in ("response.failed", "error"), kinds


def _wait_batch(client, batch_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        time.sleep(0.05)


def _lines(client, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    found = [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]
    return {line["custom_id"]: line for line in found}


def test_batch_lines_retry_a_transient_fault_and_report_a_permanent_one(client, control):
    control.add({"when": {"user_contains": "flaky"}, "fault": {"status": 429}, "times": 1},
                {"when": {"user_contains": "broken"}, "fault": {"status": 500}},
                {"when": {"user_contains": "flaky"}, "reply": "recovered"})
    lines = [{"custom_id": name, "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": MODEL, "messages": [{"role": "user", "content": name}]}} for name in ("flaky", "broken")]
    source = client.files.create(file=("batch.jsonl", io.BytesIO(b"".join(json.dumps(l).encode() + b"\n" for l in lines))), purpose="batch")
    started = time.monotonic()
    batch = _wait_batch(client, client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h").id)
    assert time.monotonic() - started < 10
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    done = _lines(client, batch.output_file_id)["flaky"]
    assert done["response"]["status_code"] == 200
    assert done["response"]["body"]["choices"][0]["message"]["content"] == "recovered"
    failed = _lines(client, batch.error_file_id)["broken"]
    assert failed["response"]["status_code"] == 500 and failed["response"]["body"]["error"]["type"] == "server_error"
    outcomes = [(c["request"]["messages"][0]["content"], c["outcome"]) for c in control.calls()]
    assert outcomes.count(("flaky", "fault")) == 1 and outcomes.count(("flaky", "reply")) == 1
    assert outcomes.count(("broken", "fault")) == 4  # the first try and three retries


# --- probability, tenants, the call log, strict mode ------------------------------------------------


def _failures(server, rule: dict, calls: int) -> list[int]:
    key = new_key()
    ctl = Control(server.url, key)
    try:
        ctl.add(rule)
        failed = []
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as sdk:
            for number in range(calls):
                try:
                    sdk.embeddings.create(model="text-embedding-3-small", input="x")
                except openai.InternalServerError as error:
                    assert error.status_code == 503
                    failed.append(number)
        return failed
    finally:
        ctl.http.close()


def test_probability_with_a_seed_is_reproducible(server):
    rule = {"probability": 0.3, "seed": 7, "fault": {"status": 503}, "when": {"endpoint": "embeddings"}}
    first, second = _failures(server, rule, 60), _failures(server, rule, 60)
    assert first == second
    assert 6 <= len(first) <= 30  # about 18 of 60
    other = _failures(server, {**rule, "seed": 8}, 60)
    assert other != first


def test_tenants_are_isolated(server, client, control):
    [rule] = control.add({"when": {"user_contains": "secret"}, "reply": "A's answer"})
    assert text_of(ask(client, "secret")) == "A's answer"
    other_key = new_key()
    other = Control(server.url, other_key)
    try:
        assert other.rules() == [] and other.calls() == []
        assert other.http.get(f"/rules/{rule['id']}").status_code == 404
        assert other.http.delete(f"/rules/{rule['id']}").status_code == 404
        other.settings(record_calls=True)
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=other_key, max_retries=0) as sdk:
            assert text_of(ask(sdk, "secret")) != "A's answer"
        assert [c["outcome"] for c in other.calls()] == ["model"]
        other.add({"when": {"user_contains": "secret"}, "reply": "B's answer"})
        assert text_of(ask(client, "secret")) == "A's answer"
        assert [r["id"] for r in control.rules()] == [rule["id"]]
        assert len(control.calls()) == 2
    finally:
        other.http.close()


def test_call_log_in_order_with_requests(client, claude, control):
    [rule] = control.add({"when": {"user_contains": "scripted"}, "reply": "yes"})
    ask(client, "scripted one", temperature=0.2, tools=[WEATHER], tool_choice="none")
    ask(client, "not matched", stream=True).close()
    claude.messages.create(model=CLAUDE, max_tokens=20, system="Be brief.", messages=[{"role": "user", "content": "scripted two"}])
    client.embeddings.create(model="text-embedding-3-small", input="vectors")
    calls = control.calls()
    assert [(c["endpoint"], c["model"], c["rule_id"], c["outcome"], c["stream"]) for c in calls] == [
        ("chat", MODEL, rule["id"], "reply", False),
        ("chat", MODEL, None, "model", True),
        ("messages", CLAUDE, rule["id"], "reply", False),
        ("embeddings", "text-embedding-3-small", None, "model", False),
    ]
    assert all(c["object"] == "understudy.model_call" and c["id"].startswith("modelcall_") for c in calls)
    first = calls[0]["request"]
    assert first["temperature"] == 0.2 and first["tool_choice"] == "none" and first["tools"][0]["function"]["name"] == "get_weather"
    assert first["messages"] == [{"role": "user", "content": "scripted one"}]
    # The Anthropic call as the rules saw it: chat-completions shape, its system prompt a system message.
    assert calls[2]["request"]["messages"][0]["role"] == "system" and "Be brief." in json.dumps(calls[2]["request"]["messages"][0])
    assert calls[3]["request"]["input"] == "vectors"
    assert control.http.delete("/calls").json()["deleted"] is True
    assert control.calls() == []
    ask(client, "scripted again")
    assert [c["outcome"] for c in control.calls()] == ["reply"]


def test_record_calls_without_rules(client, control):
    ask(client, "before")
    assert control.calls() == []  # a tenant that does not script is not logged
    assert control.http.get("/script").json() == {"object": "understudy.script", "strict": False, "record_calls": False, "file_rules": 0}
    assert control.settings(record_calls=True)["record_calls"] is True
    ask(client, "after")
    [call] = control.calls()
    assert call["outcome"] == "model" and call["rule_id"] is None and call["request"]["messages"][0]["content"] == "after"
    control.settings(record_calls=False)
    ask(client, "later")
    assert len(control.calls()) == 1


def test_strict_mode_refuses_unmatched_calls(client, http, claude, control):
    control.add({"when": {"user_contains": "known"}, "reply": "fine"})
    assert control.settings(strict=True)["strict"] is True
    assert text_of(ask(client, "known question")) == "fine"
    raw = http.post("/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "mystery"}]})
    assert_openai_error(raw, 404, code="no_matching_rule")
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "mystery", stream=True)
    assert caught.value.code == "no_matching_rule"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "mystery"}])
    assert [c["outcome"] for c in control.calls()] == ["reply", "refused", "refused", "refused"]
    control.settings(strict=False)
    assert text_of(ask(client, "mystery"))


# --- the control API --------------------------------------------------------------------------------


@pytest.mark.parametrize("body, param, code", [
    ({"when": {"user_contain": "x"}, "reply": "y"}, "rule.when.user_contain", "unknown_parameter"),
    ({"reply": "y", "colour": "red"}, "rule.colour", "unknown_parameter"),
    ({"reply": {"txt": "y"}}, "rule.reply.txt", "unknown_parameter"),
    ({"when": {"user_regex": "(unclosed"}, "reply": "y"}, "rule.when.user_regex", "invalid_value"),
    ({"when": {"json_path": [{"path": "$.x", "regex": "[z"}]}, "reply": "y"}, "rule.when.json_path[0].regex", "invalid_value"),
    ({"when": {"json_path": {"temperature": 0}}, "reply": "y"}, "rule.when.json_path[0].path", "invalid_value"),
    ({"reply": "y", "fault": {"status": 500}}, "rule", "invalid_value"),
    ({"when": {"model": "gpt-4o"}}, "rule", "invalid_value"),
    ({"when": {"endpoint": "chats"}, "reply": "y"}, "rule.when.endpoint", "invalid_value"),
    ({"when": {"endpoint": ["chat", "speech"]}, "reply": "y"}, "rule.when.endpoint", "invalid_value"),
    ({"fault": {"status": 200}}, "rule.fault.status", "invalid_value"),
    ({"fault": {"status": 500, "timeout": 1}}, "rule.fault", "invalid_value"),
    ({"reply": "y", "times": 0}, "rule.times", "invalid_value"),
    ({"reply": "y", "probability": 1.5}, "rule.probability", "invalid_value"),
    ({"reply": {"finish_reason": "done", "text": "y"}}, "rule.reply.finish_reason", "invalid_value"),
    ({"reply": {"tool_calls": [{"arguments": {}}]}}, "rule.reply.tool_calls[0]", "invalid_value"),
    ({"rules": [{"reply": "ok"}, {"reply": "y", "when": {"nth": 0}}]}, "rules[1].when.nth", "invalid_value"),
    ({"id": 5, "reply": "y"}, "rule.id", "invalid_value"),
    ({"id": "", "reply": "y"}, "rule.id", "invalid_value"),
    ({"id": "a/b", "reply": "y"}, "rule.id", "invalid_value"),
])
def test_bad_rules_are_400s_naming_the_field(control, body, param, code):
    response = control.http.post("/rules", json=body)
    assert_openai_error(response, 400, param=param, code=code)
    assert control.rules() == []  # nothing of a rejected request is kept


def test_bad_bodies_and_settings(control):
    assert control.http.post("/rules", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert_openai_error(control.http.post("/rules", json={"rules": []}), 400, param="rules")
    assert_openai_error(control.http.post("/script", json={"strict": "yes"}), 400, param="strict", code="invalid_type")
    assert_openai_error(control.http.post("/script", json={"loud": True}), 400, param="loud", code="unknown_parameter")
    assert httpx.get(f"{control.http.base_url}rules").status_code == 401


def test_rule_ids_lists_hits_and_deletes(client, control):
    created = control.add({"id": "greeting", "when": {"user_contains": "hello"}, "reply": "Hi!"})[0]
    assert created["id"] == "greeting" and created["object"] == "understudy.rule" and created["hits"] == 0
    assert created["source"] == "api" and created["reply"] == {"text": "Hi!"}
    assert_openai_error(control.http.post("/rules", json={"id": "greeting", "reply": "again"}), 400, param="id", code="duplicate_id")
    assert_openai_error(control.http.post("/rules", json={"rules": [{"id": "twin", "reply": "a"}, {"id": "twin", "reply": "b"}]}),
                        400, param="id", code="duplicate_id")
    other = control.add({"reply": "catch-all"})[0]
    assert other["id"].startswith("rule_")
    assert [text_of(ask(client, "hello")) for _ in range(3)] == ["Hi!"] * 3
    assert text_of(ask(client, "bye")) == "catch-all"
    listed = control.http.get("/rules").json()
    assert listed["object"] == "list" and [(r["id"], r["hits"]) for r in listed["data"]] == [("greeting", 3), (other["id"], 1)]
    assert control.http.get("/rules/greeting").json()["hits"] == 3
    missing = control.http.get("/rules/nope")
    assert_openai_error(missing, 404, param="rule_id")
    assert_openai_error(control.http.delete("/rules/nope"), 404, param="rule_id")
    assert control.http.delete("/rules/greeting").json() == {"id": "greeting", "object": "understudy.rule.deleted", "deleted": True}
    assert text_of(ask(client, "hello")) == "catch-all"
    assert [r["id"] for r in control.rules()] == [other["id"]]
    # An id freed by a delete may be used again, and starts from zero hits.
    again = control.add({"id": "greeting", "when": {"user_contains": "hello"}, "reply": "Hello again"})[0]
    assert again["hits"] == 0
    assert text_of(ask(client, "hello")) == "catch-all"  # appended after the catch-all: first match wins
    assert control.http.delete("/rules").json()["deleted"] is True
    assert control.rules() == []
    assert text_of(ask(client, "hello")) not in ("Hi!", "catch-all", "Hello again")


# --- UNDERSTUDY_SCRIPT ------------------------------------------------------------------------------

SCRIPT_YAML = """\
rules:
  - id: file-weather
    when: {user_contains: weather}
    reply:
      tool_calls:
        - name: get_weather
          arguments: {city: Bergen}
  - when: {user_contains: flaky}
    fault: {status: 503}
    times: 1
  - when: {endpoint: embeddings}
    reply: {embedding: [1, 0]}
"""


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("scripted")
    path = data_dir / "script.yaml"
    path.write_text(SCRIPT_YAML)
    srv = start_server(data_dir, {"UNDERSTUDY_SCRIPT": str(path)})
    yield srv
    srv.stop()


def test_script_file_answers_every_tenant(scripted_server):
    for _ in range(2):  # two tenants, each with its own counts
        key = new_key()
        with openai.OpenAI(base_url=f"{scripted_server.url}/v1", api_key=key, max_retries=0) as sdk:
            [call] = ask(sdk, "weather in Bergen?", tools=[WEATHER]).choices[0].message.tool_calls
            assert json.loads(call.function.arguments) == {"city": "Bergen"}
            with pytest.raises(openai.InternalServerError):
                ask(sdk, "flaky")
            assert text_of(ask(sdk, "flaky"))  # times: 1, counted per tenant
            assert sdk.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="float").data[0].embedding == [1.0, 0.0]
        ctl = Control(scripted_server.url, key)
        try:
            rules = ctl.rules()
            assert [r["id"] for r in rules] == ["file-weather", "rule_file_1", "rule_file_2"]
            assert all(r["source"] == "file" for r in rules) and rules[0]["hits"] == 1 and rules[1]["hits"] == 2
            assert ctl.http.get("/script").json()["file_rules"] == 3
            assert [c["outcome"] for c in ctl.calls()] == ["reply", "fault", "model", "reply"]
            # The file's rules are not the tenant's to delete.
            assert ctl.http.delete("/rules/file-weather").status_code == 404
        finally:
            ctl.http.close()


def test_a_tenants_rules_come_before_the_files(scripted_server):
    key = new_key()
    ctl = Control(scripted_server.url, key)
    try:
        ctl.add({"when": {"user_contains": "weather"}, "reply": "Mine first."})
        with openai.OpenAI(base_url=f"{scripted_server.url}/v1", api_key=key, max_retries=0) as sdk:
            assert text_of(ask(sdk, "weather?")) == "Mine first."
        assert [r["source"] for r in ctl.rules()] == ["api", "file", "file", "file"]
        assert_openai_error(ctl.http.post("/rules", json={"id": "file-weather", "reply": "x"}), 400, param="id", code="duplicate_id")
    finally:
        ctl.http.close()


BAD_SCRIPTS = [
    ("rules:\n  - when: {user_contains: x}\n    reply: hi\n    fault: {status: 500}\n", "rules[0]"),
    ("- when: {user_regex: '(open'}\n  reply: hi\n", "rules[0].when.user_regex"),
    ("rules: [{reply: hi}, {reply: hi, colour: red}]\n", "rules[1].colour"),
    ("rules: {reply: hi}\n", "must hold a list of rules"),
    ("- {id: 7, reply: a}\n", "rules[0].id"),
    ("- {id: twice, reply: a}\n- {id: twice, reply: b}\n", "rules[1]: the id 'twice' is used twice"),
    ("rules: [unclosed\n", "cannot read"),
    (None, "cannot read"),
]


@pytest.mark.parametrize("content, problem", BAD_SCRIPTS)
def test_a_bad_script_file_names_the_problem(tmp_path, content, problem):
    from app.services.script.service import load_script

    path = tmp_path / "script.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as caught:
        load_script(str(path))
    assert str(caught.value).startswith("UNDERSTUDY_SCRIPT: ") and problem in str(caught.value)


def test_a_bad_script_file_stops_understudy_serve(tmp_path):
    """The process itself: it exits non-zero and its output says why (two files at once, to keep it quick)."""

    cases = [BAD_SCRIPTS[1], BAD_SCRIPTS[5]]
    processes = []
    for number, (content, _) in enumerate(cases):
        path = tmp_path / f"script-{number}.yaml"
        path.write_text(content)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / f"data-{number}")],
            cwd=ROOT, env={**os.environ, "UNDERSTUDY_SCRIPT": str(path), "UNDERSTUDY_LOG_LEVEL": "warning"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for process, (_, problem) in zip(processes, cases):
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode != 0, output
        assert "UNDERSTUDY_SCRIPT" in output and problem in output, output
        assert "Traceback" not in output, output  # the reason, not a stack


def test_the_same_rule_id_in_two_tenants(server, client, control):
    control.add({"id": "answer", "reply": "A's answer"})
    assert text_of(ask(client, "hi")) == "A's answer"
    other_key = new_key()
    other = Control(server.url, other_key)
    try:
        other.add({"id": "answer", "reply": "B's answer"})
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=other_key, max_retries=0) as sdk:
            assert text_of(ask(sdk, "hi")) == "B's answer"
        assert text_of(ask(client, "hi")) == "A's answer"
    finally:
        other.http.close()


# --- team mode: the rules live in Redis -------------------------------------------------------------


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    """`understudy serve` and one `understudy worker` on PostgreSQL and Redis: runs execute in the worker."""
    try:
        database_url = pg.create_database("understudy_script")
    except ConnectionError as error:
        pytest.skip(str(error))
    data_dir = tmp_path_factory.mktemp("script-team")
    try:
        with claim_redis_db() as redis_url:
            env = {"UNDERSTUDY_DATABASE_URL": database_url, "UNDERSTUDY_REDIS_URL": redis_url}
            with contextmanager(_with_worker)(data_dir, env):
                srv = start_server(data_dir, env)
                try:
                    yield srv
                finally:
                    srv.stop()
    finally:
        pg.drop_database(database_url)


def test_rules_answer_a_run_in_a_separate_worker(team_server):
    key = new_key()
    ctl = Control(team_server.url, key)
    try:
        [tool_rule, text_rule] = ctl.add(
            {"when": {"user_contains": "weather", "tool_result": False}, "times": 2,
             "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Tromsø"}}]}},
            {"when": {"tool_result": "get_weather"}, "reply": "Tromsø: snow."})
        with openai.OpenAI(base_url=f"{team_server.url}/v1", api_key=key, max_retries=0) as sdk:
            # The API process answers this one: the first of the rule's two times.
            [call] = ask(sdk, "weather?", tools=[WEATHER]).choices[0].message.tool_calls
            assert json.loads(call.function.arguments) == {"city": "Tromsø"}
            assistant = sdk.beta.assistants.create(model=MODEL, tools=[WEATHER])
            run = sdk.beta.threads.create_and_run_poll(
                assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "weather in Tromsø?"}]}, poll_interval_ms=50)
            assert run.status == "requires_action", run.last_error
            [call] = run.required_action.submit_tool_outputs.tool_calls
            assert json.loads(call.function.arguments) == {"city": "Tromsø"}
            run = sdk.beta.threads.runs.submit_tool_outputs_and_poll(
                run_id=run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": call.id, "output": "snow"}], poll_interval_ms=50)
            assert run.status == "completed", run.last_error
            last = sdk.beta.threads.messages.list(thread_id=run.thread_id, order="desc", limit=1).data[0]
            assert last.content[0].text.value == "Tromsø: snow."
            # `times: 2` was counted across both processes: a third call falls through to the model.
            assert text_of(ask(sdk, "weather?", tools=[WEATHER], tool_choice="none")) != "Tromsø: snow."
        # The worker's calls are in the log the API process serves, in order.
        calls = ctl.calls()
        assert [(c["endpoint"], c["rule_id"]) for c in calls] == [
            ("chat", tool_rule["id"]), ("runs", tool_rule["id"]), ("runs", text_rule["id"]), ("chat", None)]
        assert {r["id"]: r["hits"] for r in ctl.rules()} == {tool_rule["id"]: 3, text_rule["id"]: 1}
    finally:
        ctl.http.close()


def test_control_api_on_redis_state(team_server):
    key = new_key()
    ctl = Control(team_server.url, key)
    try:
        first, second = ctl.add({"id": "one", "when": {"user_contains": "one"}, "reply": "1"}, {"reply": "catch-all"})
        assert_openai_error(ctl.http.post("/rules", json={"id": "one", "reply": "x"}), 400, param="id", code="duplicate_id")
        with openai.OpenAI(base_url=f"{team_server.url}/v1", api_key=key, max_retries=0) as sdk:
            assert text_of(ask(sdk, "one")) == "1"
            assert ctl.http.delete("/rules/one").status_code == 200
            assert_openai_error(ctl.http.delete("/rules/one"), 404, param="rule_id")
            assert text_of(ask(sdk, "one")) == "catch-all"
            ctl.add({"id": "one", "when": {"user_contains": "one"}, "reply": "1 again"})  # after the catch-all
            assert [(r["id"], r["hits"]) for r in ctl.rules()] == [(second["id"], 1), ("one", 0)]
            ctl.http.delete("/rules")
            ctl.settings(strict=True)
            with pytest.raises(openai.NotFoundError):
                ask(sdk, "one")
            ctl.settings(strict=False)
            assert text_of(ask(sdk, "one")) not in ("1", "1 again", "catch-all")
        assert [c["outcome"] for c in ctl.calls()] == ["reply", "reply", "refused"]  # no rules, no settings on: not logged
        ctl.http.delete("/calls")
        assert ctl.calls() == []
    finally:
        ctl.http.close()


def test_vector_store_ingestion_is_scripted_only_on_purpose(client, control):
    control.add({"reply": {"embedding": [9.0, 9.0]}})  # a catch-all vector: never a vector store's index
    source = client.files.create(file=("ice.txt", io.BytesIO(b"Glaciers are rivers of ice. " * 20)), purpose="assistants")
    store = client.vector_stores.create(name="scripted")
    done = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=source.id, poll_interval_ms=50)
    assert done.status == "completed"
    assert [(c["endpoint"], c["outcome"]) for c in control.calls()] == [("vector_stores", "model")]
    control.http.delete("/rules")
    control.add({"when": {"endpoint": "vector_stores"}, "fault": {"status": 429}, "times": 1},
                {"when": {"endpoint": "vector_stores"}, "fault": {"status": 500}, "times": 1})
    for code in ("server_error", "server_error"):  # a rate limit is not the file's fault either
        store = client.vector_stores.create(name="faulty")
        failed = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=source.id, poll_interval_ms=50)
        assert failed.status == "failed" and failed.last_error.code == code, failed.last_error
    assert [c["outcome"] for c in control.calls()][-2:] == ["fault", "fault"]


def test_a_cut_past_the_last_chunk_still_cuts(http, control):
    control.add({"fault": {"cut_after": 500}})
    with http.stream("POST", "/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True}) as response:
        assert response.status_code == 200
        lines = []
        with pytest.raises(httpx.RemoteProtocolError):
            for line in response.iter_lines():
                lines.append(line)
    assert "data: [DONE]" not in lines and any(line.startswith("data: ") for line in lines)


def test_malformed_past_the_last_chunk_still_breaks(client, control):
    control.add({"fault": {"malformed_after": 500}})
    with pytest.raises(json.JSONDecodeError):
        list(ask(client, "x", stream=True))


def test_a_refusal_through_responses(client, control):
    control.add({"reply": {"refusal": "I can't help with that."}})
    response = client.responses.create(model=MODEL, input="how to build a bomb")
    [message] = response.output
    assert message.type == "message" and response.status == "completed"
    assert [(p.type, p.refusal) for p in message.content] == [("refusal", "I can't help with that.")]
    assert response.output_text == ""
    with client.responses.stream(model=MODEL, input="again") as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.refusal.delta"]
    assert "".join(deltas) == "I can't help with that." and len(deltas) > 1
    [done] = [e for e in events if e.type == "response.refusal.done"]
    assert done.refusal == "I can't help with that." and done.content_index == 0
    assert final.output[0].content[0].type == "refusal"
    # The refusal is part of the conversation a follow-up sees.
    client.responses.create(model=MODEL, input="why?", previous_response_id=response.id)
    follow_up = control.calls()[-1]["request"]["messages"]
    assert any(m["role"] == "assistant" and "I can't help with that." in json.dumps(m) for m in follow_up)


def test_a_refusal_through_a_run(client, control):
    control.add({"when": {"endpoint": "runs"}, "reply": {"refusal": "I can't help with that."}})
    assistant = client.beta.assistants.create(model=MODEL)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "how to build a bomb"}]}, poll_interval_ms=50)
    assert run.status == "completed"
    [reply] = client.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id).data
    assert [(part.type, part.refusal) for part in reply.content] == [("refusal", "I can't help with that.")]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "again"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        deltas = [event.data.delta.content[0] for event in stream if event.event == "thread.message.delta"]
    assert "".join(part.refusal for part in deltas if part.type == "refusal") == "I can't help with that."


def test_a_rule_does_not_stand_in_for_a_model_the_tenant_cannot_use(client, control):
    control.add({"reply": "scripted"})
    for model in ("ft:gpt-4o-mini-2024-07-18:someone-else::AbCdEf12", "not-a-model-anyone-knows"):
        with pytest.raises(openai.NotFoundError) as refused:
            ask(client, "hi", model=model)
        assert refused.value.code == "model_not_found"
    assert control.calls() == []  # refused before any rule was asked
    assert text_of(ask(client, "hi")) == "scripted"
