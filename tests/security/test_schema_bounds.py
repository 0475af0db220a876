"""Hostile schemas (and other hostile sizes) against the offline model, through the official SDKs.

A tool or structured-output schema is client input: `minLength: 10**9`, `minItems: 10**8`, a `$ref` that
every value must follow, `minItems` nested... once froze the event loop for more than ten minutes and
made the server deaf to SIGTERM. Each must now be a 400 naming the parameter (or a bounded, valid
answer) within a few seconds, `/healthz` must answer within a second while such requests run, and the
server must stop promptly on SIGTERM. The server is this module's own: the last test stops it.
"""
from __future__ import annotations

import json
import signal
import struct
import threading
import time

import anthropic
import httpx
import jsonschema
import openai
import pytest

from tests.conftest import new_key, start_server

FEW_SECONDS = 5.0
PROMPT = [{"role": "user", "content": "Please call fill_form for Paris"}]

HOSTILE = {
    "min_length": {"type": "object", "properties": {"a": {"type": "string", "minLength": 10**9}}, "required": ["a"]},
    "min_items": {"type": "object", "properties": {"a": {"type": "array", "minItems": 10**8}}, "required": ["a"]},
    "min_properties": {"type": "object", "minProperties": 10**7},
    "recursive_ref": {"$defs": {"n": {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}, "required": ["c"]}}, "$ref": "#/$defs/n"},
    "self_ref": {"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]},
    "all_of_loop": {"allOf": [{"$ref": "#"}]},
    "nested_items": {"type": "object", "properties": {"a": {"type": "array", "minItems": 10_000, "items": {
        "type": "array", "minItems": 10_000, "items": {"type": "string"}}}}, "required": ["a"]},
    "properties_not_an_object": {"type": "object", "properties": [1, 2]},
    "huge_float_min_length": {"type": "object", "properties": {"a": {"type": "string", "minLength": 1e308}}, "required": ["a"]},
}
# Schemas that must get a bounded, valid answer: the budget drops optional parts, a union has a way out.
BOUNDED = {
    "many_big_optionals": {"type": "object", "properties": {f"p{i}": {"type": "string", "minLength": 90_000} for i in range(40)}},
    "tree_with_exit": {"$defs": {"n": {"anyOf": [{"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/n"},
                                                                                         "minItems": 1}}, "required": ["kids"]},
                                                 {"type": "integer"}]}}, "$ref": "#/$defs/n"},
    "pattern_bomb": {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a{1000}){1000}", "maxLength": 10}}},
    "redos_pattern": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+b$"}}, "required": ["a"]},
    "tiny_multiple_of": {"type": "object", "properties": {"x": {"type": "number", "multipleOf": 1e-300, "minimum": -1e308, "maximum": 1e308}},
                         "required": ["x"]},
}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("schema-bounds"))
    yield srv
    srv.stop(signal.SIGKILL, timeout=5)


@pytest.fixture
def oai(own_server):
    with openai.OpenAI(base_url=f"{own_server.url}/v1", api_key=new_key(), max_retries=0, timeout=60) as sdk:
        yield sdk


@pytest.fixture
def claude(own_server):
    with anthropic.Anthropic(base_url=own_server.url, api_key=new_key(), max_retries=0, timeout=60) as sdk:
        yield sdk


def _refused(call, param: str | None = None) -> openai.BadRequestError:
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as error:
        call()
    assert time.monotonic() - started < FEW_SECONDS
    body = error.value.body
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error", body
    if param is not None:
        assert body["param"] == param, body
    return error.value


def _tool(schema: dict) -> dict:
    return {"type": "function", "function": {"name": "fill_form", "parameters": schema}}


@pytest.mark.parametrize("name", HOSTILE)
def test_chat_tool_parameters(oai, name):
    error = _refused(lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, tools=[_tool(HOSTILE[name])], tool_choice="required"),
                     "tools[0].function.parameters")
    assert "Invalid schema for function 'fill_form'" in error.message


@pytest.mark.parametrize("name", HOSTILE)
def test_chat_structured_output(oai, name):
    fmt = {"type": "json_schema", "json_schema": {"name": "form", "schema": HOSTILE[name]}}
    _refused(lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, response_format=fmt), "response_format.json_schema.schema")
    _refused(lambda: list(oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, response_format=fmt, stream=True)),
             "response_format.json_schema.schema")


@pytest.mark.parametrize("name", BOUNDED)
def test_bounded_schemas_get_valid_answers(oai, name):
    schema = BOUNDED[name]
    started = time.monotonic()
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, tools=[_tool(schema)], tool_choice="required")
    assert time.monotonic() - started < FEW_SECONDS
    arguments = completion.choices[0].message.tool_calls[0].function.arguments
    assert len(arguments) <= 1.1 * (1 << 20)
    if name not in ("pattern_bomb",):  # a pattern beyond the generator: bounded, not necessarily matching
        jsonschema.validate(json.loads(arguments), schema)


@pytest.mark.parametrize("name", ["min_length", "recursive_ref", "nested_items"])
def test_responses(oai, name):
    schema = HOSTILE[name]
    _refused(lambda: oai.responses.create(model="gpt-4o-mini", input="hi", text={"format": {"type": "json_schema", "name": "out", "schema": schema}}),
             "text.format.schema")
    tool = {"type": "function", "name": "fill_form", "parameters": schema, "strict": False}
    _refused(lambda: oai.responses.create(model="gpt-4o-mini", input="fill_form please", tools=[tool], tool_choice="required"), "tools[0].parameters")


def test_assistants_and_runs(oai):
    schema = HOSTILE["self_ref"]
    _refused(lambda: oai.beta.assistants.create(model="gpt-4o-mini", tools=[_tool(schema)]), "tools[0].function.parameters")
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": HOSTILE["min_items"]}}
    _refused(lambda: oai.beta.assistants.create(model="gpt-4o-mini", response_format=fmt), "response_format.json_schema.schema")
    assistant = oai.beta.assistants.create(model="gpt-4o-mini")
    thread = oai.beta.threads.create()
    _refused(lambda: oai.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, response_format=fmt),
             "response_format.json_schema.schema")
    _refused(lambda: oai.beta.threads.create_and_run(assistant_id=assistant.id, tools=[_tool(schema)]), "tools[0].function.parameters")


@pytest.mark.parametrize("name", ["min_length", "recursive_ref", "nested_items", "properties_not_an_object"])
def test_anthropic_tool_input_schema(claude, name):
    started = time.monotonic()
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=PROMPT, tool_choice={"type": "any"},
                               tools=[{"name": "fill_form", "input_schema": HOSTILE[name]}])
    assert time.monotonic() - started < FEW_SECONDS
    assert error.value.body["type"] == "error" and error.value.body["error"]["type"] == "invalid_request_error"
    assert error.value.body["error"]["message"].startswith("tools.0.input_schema: ")


def test_anthropic_structured_outputs(claude):
    for spelling in ({"output_config": {"format": {"type": "json_schema", "schema": HOSTILE["min_items"]}}},
                     {"output_format": {"type": "json_schema", "schema": HOSTILE["self_ref"]}}):
        with pytest.raises(anthropic.BadRequestError) as error:
            claude.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=PROMPT, extra_body=spelling)
        assert ".schema: " in error.value.body["error"]["message"]


def test_anthropic_count_tokens_refuses_a_malformed_schema(claude):
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.count_tokens(model="claude-sonnet-4-5", messages=PROMPT,
                                     tools=[{"name": "fill_form", "input_schema": {"type": "object", "properties": 5}}])
    assert error.value.body["error"]["message"].startswith("tools.0.input_schema: JSON schema is invalid")
    # the offline model's caps are about generating values: counting tokens does not care
    counted = claude.messages.count_tokens(model="claude-sonnet-4-5", messages=PROMPT, tools=[{"name": "fill_form", "input_schema": HOSTILE["min_length"]}])
    assert counted.input_tokens > 0


def test_other_generators_are_bounded(oai):
    _refused(lambda: oai.embeddings.create(model="text-embedding-3-small", input="hi", dimensions=10**9), "dimensions")
    _refused(lambda: oai.embeddings.create(model="text-embedding-3-small", input=["hello " * 4000] * 80), "input")  # 320k tokens
    _refused(lambda: oai.moderations.create(input=["a"] * 3000), "input")
    _refused(lambda: oai.images.generate(model="dall-e-2", prompt="a cat", n=10**9), "n")
    _refused(lambda: oai.images.generate(model="dall-e-2", prompt="a cat", size="100000x100000"), "size")
    _refused(lambda: oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=["a"] * 2000, n=2), "n")
    _refused(lambda: oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="word " * 50_000, echo=True, logprobs=5, n=10), "echo")
    _refused(lambda: oai.audio.speech.create(model="tts-1", voice="alloy", input="x" * 5000), "input")
    _refused(lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, n=10**6), "n")
    # a WAV whose header declares 536,871 seconds in 1 kB
    forged = (b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
              + b"data" + struct.pack("<I", 0xFFFFFF00) + b"\x80" * 1000)
    error = _refused(lambda: oai.audio.transcriptions.create(model="whisper-1", file=("forged.wav", forged, "audio/wav")), "file")
    assert error.code == "audio_too_long"


def _slow_hostile_requests(url: str) -> list[tuple[str, dict]]:
    tool = _tool({"type": "array", "minItems": 10_000, "items": {"type": "object", "required": [f"k{i}" for i in range(30)],
                                                                 "properties": {f"k{i}": {"type": "string"} for i in range(30)}}})
    big = {"type": "json_schema", "json_schema": {"name": "big", "schema": {"type": "array", "minItems": 5000,
                                                                            "items": {"type": "string", "minLength": 150}}}}
    chat = f"{url}/v1/chat/completions"
    return [
        (chat, {"model": "gpt-4o-mini", "messages": PROMPT, "tools": [tool], "tool_choice": "required"}),
        (chat, {"model": "gpt-4o-mini", "messages": PROMPT, "tools": [_tool(BOUNDED["many_big_optionals"])], "tool_choice": "required"}),
        (chat, {"model": "gpt-4o-mini", "messages": PROMPT, "response_format": big, "n": 128}),
        (chat, {"model": "gpt-4o-mini", "messages": PROMPT, "response_format": big, "n": 128, "stream": True}),
        (f"{url}/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "text": {"format": {"type": "json_schema", "name": "n",
                                                                                        "schema": HOSTILE["nested_items"]}}}),
        (f"{url}/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": PROMPT, "tools": [
            {"name": "fill_form", "input_schema": {"type": "object", "properties": {"a": tool["function"]["parameters"]}, "required": ["a"]}}]}),
    ]


def _send_all(requests: list[tuple[str, dict]], results: list) -> None:
    def send(url: str, body: dict) -> None:
        started = time.monotonic()
        try:
            response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {new_key()}", "x-api-key": new_key()}, timeout=60)
            results.append((url, response.status_code, time.monotonic() - started))
        except httpx.HTTPError as exc:
            results.append((url, repr(exc), time.monotonic() - started))

    threads = [threading.Thread(target=send, args=request) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.parametrize("index", range(6))
def test_healthz_answers_while_a_hostile_request_runs(own_server, index):
    """Each of the slowest hostile requests, alone in flight (twice: one per worker of the offline
    model's pool), while /healthz is asked every 50 ms: every answer within a second."""
    results: list = []
    sender = threading.Thread(target=_send_all, args=([_slow_hostile_requests(own_server.url)[index]] * 2, results))
    sender.start()
    latencies = []
    while sender.is_alive():
        started = time.monotonic()
        assert httpx.get(f"{own_server.url}/healthz", timeout=5).status_code == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    sender.join()
    assert latencies and max(latencies) < 1.0, latencies
    for url, status, seconds in results:
        assert status in (200, 400), (url, status)
        assert seconds < 2 * FEW_SECONDS, (url, seconds)


def test_sigterm_stops_the_server_promptly(own_server):
    results: list = []
    sender = threading.Thread(target=_send_all, args=(_slow_hostile_requests(own_server.url)[:3], results))
    sender.start()
    time.sleep(0.3)  # in flight
    own_server.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    own_server.process.wait(timeout=15)
    assert time.monotonic() - started < 10
    sender.join()
