"""The Anthropic Messages API on the offline model, through the official `anthropic` SDK; and Gemini's
generateContent shape over raw HTTP (no Gemini SDK among our dependencies)."""
from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from tests.conftest import new_key

MODEL = "claude-opus-4-8"
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def claude(server) -> anthropic.Anthropic:
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as sdk:
        yield sdk


def test_create_message(claude):
    message = claude.messages.create(model=MODEL, max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Tell me about glaciers"}])
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_stream_events_in_anthropic_order(claude):
    whole = claude.messages.create(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Describe rain"}]).content[0].text
    with claude.messages.stream(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Describe rain"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.index("content_block_start") < kinds.index("content_block_delta") < kinds.index("content_block_stop") < kinds.index("message_delta")
    assert final.content[0].text == whole


def test_tool_use_and_tool_result(claude):
    first = claude.messages.create(
        model=MODEL, max_tokens=200, tools=[WEATHER], tool_choice={"type": "any"}, messages=[{"role": "user", "content": "Weather in Oslo?"}]
    )
    use = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.name == "get_weather" and isinstance(use.input["city"], str)
    answer = claude.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sleet, 2 degrees"}]},
        ],
    )
    assert "Sleet" in answer.content[0].text


def test_streamed_tool_use_arguments_are_json(claude):
    with claude.messages.stream(
        model=MODEL, max_tokens=200, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather?"}],
    ) as stream:
        final = stream.get_final_message()
    use = next(block for block in final.content if block.type == "tool_use")
    assert set(use.input) >= {"city"}


def test_count_tokens(claude):
    short = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}]).input_tokens
    long = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi " * 200}]).input_tokens
    assert 0 < short < long


def test_beta_endpoint_accepts_betas(claude):
    message = claude.beta.messages.create(model=MODEL, max_tokens=50, betas=["token-efficient-tools-2025-02-19"], messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text


def test_errors_are_anthropic_shaped(claude, server):
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "robot", "content": "hi"}])
    assert error.value.body["type"] == "error" and error.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}])  # outside every family
    response = httpx.post(f"{server.url}/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": []})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_anthropic_sdk_lists_models(claude):
    ids = [model.id for model in claude.models.list()]
    assert MODEL in ids
    assert claude.models.retrieve(MODEL).type == "model"


# --- Gemini -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1beta/models", "/v1/gemini"])
def test_gemini_generate_content(server, prefix):
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me about volcanoes"}]}]}
    response = httpx.post(f"{server.url}{prefix}/gemini-2.5-flash:generateContent", json=body, headers={"x-goog-api-key": new_key()})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["candidates"][0]["content"]["parts"][0]["text"]
    assert result["candidates"][0]["finishReason"] == "STOP"
    assert result["usageMetadata"]["promptTokenCount"] > 0


def test_gemini_stream_sse_and_json_array(server):
    body = {"contents": [{"role": "user", "parts": [{"text": "Tell me about volcanoes"}]}]}
    url = f"{server.url}/v1beta/models/gemini-2.5-flash"
    whole = httpx.post(f"{url}:generateContent?key={new_key()}", json=body).json()["candidates"][0]["content"]["parts"][0]["text"]
    with httpx.stream("POST", f"{url}:streamGenerateContent?alt=sse", json=body, headers={"x-goog-api-key": new_key()}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert "".join(p.get("text", "") for e in events for c in e.get("candidates", []) for p in c["content"]["parts"]) == whole
    array = httpx.post(f"{url}:streamGenerateContent", json=body, headers={"x-goog-api-key": new_key()}).json()
    assert isinstance(array, list) and array


def test_gemini_errors_are_gemini_shaped(server):
    response = httpx.post(f"{server.url}/v1beta/models/gemini-2.5-flash:generateContent", json={"contents": []})
    assert response.status_code == 401 and set(response.json()["error"]) >= {"code", "message", "status"}
    response = httpx.post(f"{server.url}/v1beta/models/gemini-2.5-flash:explode", json={}, headers={"x-goog-api-key": new_key()})
    assert response.status_code == 400 and response.json()["error"]["status"] == "INVALID_ARGUMENT"
