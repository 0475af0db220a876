"""Protocol translators (app/inference/translate): every shape produced is checked with the official SDKs'
own models, streams are reassembled and compared with the non-stream translation, and conversations
survive a round trip. Pure functions: no server, no network."""
from __future__ import annotations

import asyncio
import copy
import json

import anthropic.types as at
import openai.types.chat as oc
from openai.types import ErrorObject
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types.shared.error_response import ErrorResponse as AnthropicErrorResponse
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter

from app.core.validation import validate_params
from app.inference.base import UpstreamError
from app.inference.chunks import ChunkAccumulator
from app.inference.translate import anthropic as ta
from app.inference.translate import gemini as tg

STREAM_EVENT = TypeAdapter(at.RawMessageStreamEvent)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City and country"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["location", "unit"],
    "additionalProperties": False,
}
CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]
# A whole agent turn: system, an image question, two parallel tool calls, their results, a follow-up.
CHAT_CONVERSATION = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": [
        {"type": "text", "text": "Where is this, and what's the weather there now?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}},
    ]},
    {"role": "assistant", "content": "That is Paris. Checking.", "tool_calls": [
        {"id": "call_weather1", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Paris, FR", "unit": "c"}'}},
        {"id": "call_time2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'}},
    ]},
    {"role": "tool", "tool_call_id": "call_weather1", "content": '{"temperature": 21, "sky": "clear"}'},
    {"role": "tool", "tool_call_id": "call_time2", "content": '{"time": "14:05"}'},
    {"role": "user", "content": "Thanks! Answer in one line."},
]


def collect(agen) -> list:
    async def run():
        return [item async for item in agen]
    return asyncio.run(run())


async def aiter_of(items):
    for item in items:
        yield copy.deepcopy(item)


def check_anthropic_request(body: dict) -> dict:
    # The repo's validator: the SDK TypedDict, strict, unknown top-level keys rejected, lazy lists consumed.
    return validate_params(at.message_create_params.MessageCreateParamsNonStreaming, body)


def check_chat_request(body: dict) -> dict:
    return validate_params(CompletionCreateParamsNonStreaming, body)


def reassemble_anthropic(events: list[tuple[str, dict]]) -> at.Message:
    snapshot, buffers = None, {}
    for name, data in events:
        assert name == data["type"]
        if name == "ping":
            continue
        snapshot = accumulate_event(event=STREAM_EVENT.validate_python(data), current_snapshot=snapshot, json_bufs=buffers)
    return at.Message.model_validate(snapshot.model_dump())


def reassemble_chat(chunks: list[dict]) -> dict:
    acc = ChunkAccumulator()
    for chunk in chunks:
        oc.ChatCompletionChunk.model_validate(chunk)
        acc.add(chunk)
    return acc.completion()


def answer(completion: dict) -> tuple:
    """What a completion says, ignoring ids/timestamps (and "" vs null content, which the accumulator blurs)."""
    choice = completion["choices"][0]
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in choice["message"].get("tool_calls") or ()]
    return choice["message"]["content"] or None, calls, choice["finish_reason"], completion.get("usage")


# ---------------------------------------------------------------- Anthropic: requests

def test_chat_request_becomes_a_valid_messages_request():
    body = ta.chat_to_messages_request({"model": "claude-sonnet-5", "messages": CHAT_CONVERSATION, "tools": CHAT_TOOLS,
                                        "tool_choice": "required", "parallel_tool_calls": False, "max_completion_tokens": 512,
                                        "stop": "END", "temperature": 0.2, "user": "user-42", "stream": True})
    check_anthropic_request(body)
    assert body["system"] == "You are a concise assistant."
    assert body["max_tokens"] == 512 and body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "user-42"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["tools"][0] == {"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA}
    assert "stream" not in body and "temperature" not in body  # sampling is deprecated on current models
    user, assistant, results, = body["messages"][:3]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert user["content"][2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/paris.jpg"}}
    assert assistant["content"][1] == {"type": "tool_use", "id": "call_weather1", "name": "get_weather", "input": {"location": "Paris, FR", "unit": "c"}}
    # both tool messages and the follow-up share one user turn, tool results first
    assert len(body["messages"]) == 3 and results["role"] == "user"
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
    assert results["content"][0] == {"type": "tool_result", "tool_use_id": "call_weather1", "content": '{"temperature": 21, "sky": "clear"}'}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}), ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"}),
])
def test_tool_choice_maps_to_anthropic(choice, expected):
    body = ta.chat_to_messages_request({"model": "claude-opus-5", "messages": [{"role": "user", "content": "hi"}], "tools": CHAT_TOOLS, "tool_choice": choice})
    check_anthropic_request(body)
    assert body["tool_choice"] == expected


def test_messages_request_defaults_and_legacy_shapes():
    body = ta.chat_to_messages_request({"model": "claude-opus-5", "messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "not json"}},
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ], "functions": [CHAT_TOOLS[0]["function"]], "function_call": {"name": "get_weather"}})
    check_anthropic_request(body)
    assert body["max_tokens"] == ta.DEFAULT_MAX_TOKENS and body["system"] == "Be brief."
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}
    call, result = body["messages"][1]["content"][0], body["messages"][2]["content"][0]
    assert call["input"] == {} and result["tool_use_id"] == call["id"]  # invalid arguments -> {}, pairs kept
    # a user note between a call and its result: the result still leads its user turn, as Anthropic requires
    noted = ta.chat_to_messages_request({"model": "claude-opus-5", "messages": [*CHAT_CONVERSATION[1:3], {"role": "user", "content": "(hurry)"}, *CHAT_CONVERSATION[3:5]]})
    check_anthropic_request(noted)
    assert [b["type"] for b in noted["messages"][2]["content"]] == ["tool_result", "tool_result", "text"]


def test_sampling_and_structured_output_depend_on_the_model():
    schema = {"name": "city", "strict": True, "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": False}}
    base = {"messages": [{"role": "user", "content": "Name a city"}], "temperature": 1.7, "top_p": 0.9, "response_format": {"type": "json_schema", "json_schema": schema}}
    new = ta.chat_to_messages_request({**base, "model": "claude-sonnet-5-5"})
    check_anthropic_request(new)
    assert new["output_config"] == {"format": {"type": "json_schema", "schema": schema["schema"]}} and "system" not in new
    old = ta.chat_to_messages_request({**base, "model": "claude-3-5-haiku-20241022"})
    assert old["temperature"] == 1.0 and old["top_p"] == 0.9  # clamped to Anthropic's range
    assert "output_config" not in old and '"required": ["name"]' in old["system"]  # best effort: an instruction
    assert "temperature" not in ta.chat_to_messages_request({**base, "model": "claude-opus-4-7"})
    assert ta.chat_to_messages_request({**base, "model": "claude-opus-4-1-20250805"})["temperature"] == 1.0


def test_messages_request_edge_shapes():
    pdf = "data:application/pdf;base64,JVBERi0xLjQK"
    body = ta.chat_to_messages_request({"model": "claude-opus-5", "tools": CHAT_TOOLS, "messages": [
        {"role": "user", "content": [{"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}}, {"type": "text", "text": "Summarise."}]},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call:1/x", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call:1/x", "content": [{"type": "text", "text": "14:05"}]},
    ], "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_time"}}]}}})
    check_anthropic_request(body)
    assert body["messages"][0]["content"][0] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}
    call, result = body["messages"][1]["content"][0], body["messages"][2]["content"][0]
    assert call["id"] == result["tool_use_id"] == "call_1_x" and call["input"] == {}  # Anthropic's id alphabet, pairs kept
    assert result["content"] == [{"type": "text", "text": "14:05"}]
    assert body["tool_choice"] == {"type": "any"} and [t["name"] for t in body["tools"]] == ["get_time"]
    # and the other way: native structured output and a PDF document
    chat = ta.messages_to_chat_request({"model": "m", "max_tokens": 5, "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
                                        "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}]}]})
    check_chat_request(chat)
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": True}}
    assert chat["messages"][0]["content"] == [{"type": "file", "file": {"filename": "document.pdf", "file_data": pdf}}]


def test_unsupported_content_is_a_value_error():
    with pytest.raises(ValueError, match="input_audio"):
        ta.chat_to_messages_request({"model": "claude-opus-5", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]})


# The same conversation as Claude Code would send it to /v1/messages.
MESSAGES_REQUEST = {
    "model": "claude-sonnet-5", "max_tokens": 1024, "stream": True, "top_k": 5, "thinking": {"type": "adaptive"},
    "system": [{"type": "text", "text": "You are a concise assistant.", "cache_control": {"type": "ephemeral"}}],
    "metadata": {"user_id": "user-42"}, "stop_sequences": ["A", "B", "C", "D", "E"],
    "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER_SCHEMA},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "messages": [
        {"role": "user", "content": [
            {"type": "text", "text": "Summarise the notes and check the weather."},
            {"type": "document", "title": "notes.txt", "source": {"type": "text", "media_type": "text/plain", "data": "Trip to Paris on Monday."}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQBCgIYAhIM"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris, FR", "unit": "c"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": [{"type": "text", "text": "21C clear"},
                                                                              {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}}]},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ],
}


def test_messages_request_becomes_a_valid_chat_request():
    TypeAdapter(at.MessageCreateParams).validate_python(MESSAGES_REQUEST)  # the fixture is a real request
    body = ta.messages_to_chat_request(MESSAGES_REQUEST)
    check_chat_request(body)
    assert body["max_completion_tokens"] == 1024 and body["stop"] == ["A", "B", "C", "D"] and body["user"] == "user-42"
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]  # server tools dropped
    assert not {"stream", "top_k", "thinking", "system", "metadata"} & body.keys()
    system, user, assistant, tool, follow_up = body["messages"]
    assert system == {"role": "system", "content": "You are a concise assistant."}
    assert user["content"][1] == {"type": "text", "text": "notes.txt\n\nTrip to Paris on Monday."}
    assert user["content"][2] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert assistant["content"] == "Checking." and assistant["tool_calls"][0]["function"]["arguments"] == '{"location": "Paris, FR", "unit": "c"}'
    assert tool == {"role": "tool", "tool_call_id": "toolu_01A", "content": "21C clear"}
    # the tool's image rides in the next user message
    assert follow_up["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/map.png"}}, {"type": "text", "text": "And tomorrow?"}]


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"), ({"type": "none"}, "none"), ({"type": "any"}, "required"),
    ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice_maps_to_chat(choice, expected):
    body = ta.messages_to_chat_request({**MESSAGES_REQUEST, "tool_choice": choice})
    check_chat_request(body)
    assert body["tool_choice"] == expected and "parallel_tool_calls" not in body


def normalise_chat(messages: list[dict]) -> list[dict]:
    out = []
    for m in copy.deepcopy(messages):
        if isinstance(m.get("content"), list) and len(m["content"]) == 1 and m["content"][0]["type"] == "text":
            m["content"] = m["content"][0]["text"]
        out.append(m)
    return out


def test_chat_to_messages_to_chat_keeps_the_conversation():
    messages = ta.chat_to_messages_request({"model": "claude-sonnet-5", "messages": CHAT_CONVERSATION, "tools": CHAT_TOOLS, "max_tokens": 300})
    back = ta.messages_to_chat_request(messages)
    check_chat_request(back)
    assert normalise_chat(back["messages"]) == normalise_chat(CHAT_CONVERSATION)
    assert back["tools"] == CHAT_TOOLS and back["max_completion_tokens"] == 300


def test_messages_to_chat_to_messages_keeps_the_conversation():
    request = {"model": "claude-sonnet-5", "max_tokens": 200, "system": "Be kind.", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What's in this?"}, {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "toolu_1", "name": "zoom", "input": {"x": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"}]},
        {"role": "assistant", "content": "A cat."},
    ]}
    back = ta.chat_to_messages_request(ta.messages_to_chat_request(request))
    check_anthropic_request(back)
    assert back["messages"] == request["messages"] and back["system"] == "Be kind." and back["max_tokens"] == 200


# ---------------------------------------------------------------- Anthropic: responses and streams

CLAUDE_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-5",
    "content": [
        {"type": "thinking", "thinking": "Need weather and time.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "Let me check the weather."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "Paris, FR", "unit": "c"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
    ],
    "stop_reason": "tool_use", "stop_sequence": None,
    "usage": {"input_tokens": 472, "output_tokens": 89, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024},
}
# What Anthropic streams for that message.
CLAUDE_EVENTS = [
    {"type": "message_start", "message": {**CLAUDE_MESSAGE, "content": [], "stop_reason": None, "usage": {**CLAUDE_MESSAGE["usage"], "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Need weather and time."}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Let me check"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": " the weather."}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"location": "Par'}},
    {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": 'is, FR", "unit": "c"}'}},
    {"type": "content_block_stop", "index": 2},
    {"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}}},
    {"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_stop", "index": 3},
    {"type": "message_delta", "delta": {"type": "message_delta", "stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
]


def test_message_becomes_a_chat_completion():
    completion = ta.message_to_chat_completion(at.Message.model_validate(CLAUDE_MESSAGE).model_dump(), model="claude-sonnet-5")
    oc.ChatCompletion.model_validate(completion)
    assert completion["id"] == "chatcmpl-01XFDUDYJgAACzvnptvVoYEL"
    assert answer(completion) == ("Let me check the weather.",
                                  [("toolu_01A09q90qw90lq917835lq9", "get_weather", {"location": "Paris, FR", "unit": "c"}), ("toolu_01B", "get_time", {})],
                                  "tool_calls",
                                  {"prompt_tokens": 1496, "completion_tokens": 89, "total_tokens": 1585, "prompt_tokens_details": {"cached_tokens": 1024}})


@pytest.mark.parametrize("stop_reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_stop_reason_maps_to_finish_reason(stop_reason, finish):
    completion = ta.message_to_chat_completion({**CLAUDE_MESSAGE, "stop_reason": stop_reason})
    assert completion["choices"][0]["finish_reason"] == finish and completion["model"] == "claude-sonnet-5"


def test_anthropic_stream_reassembles_to_the_message_translation():
    for event in CLAUDE_EVENTS:
        if event["type"] != "ping":
            STREAM_EVENT.validate_python(event)  # the fixture is what Anthropic sends
    chunks = collect(ta.messages_stream_to_chat_chunks(aiter_of(CLAUDE_EVENTS), include_usage=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"] == [] and chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert len({c["id"] for c in chunks}) == 1
    streamed = reassemble_chat(chunks)
    assert answer(streamed) == answer(ta.message_to_chat_completion(CLAUDE_MESSAGE))
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert fragments[0] == {"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    assert [f["function"]["arguments"] for f in fragments if f["index"] == 0][1:] == ['{"location": "Par', 'is, FR", "unit": "c"}']


def test_anthropic_stream_without_usage_and_with_an_error():
    chunks = collect(ta.messages_stream_to_chat_chunks(aiter_of(CLAUDE_EVENTS), include_usage=False))
    assert all(c["choices"] for c in chunks) and "usage" not in reassemble_chat(chunks)
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamError) as raised:
        collect(ta.messages_stream_to_chat_chunks(aiter_of([CLAUDE_EVENTS[0], overloaded]), include_usage=True))
    assert raised.value.status_code == 529 and raised.value.body["error"]["message"] == "Overloaded"


# An OpenAI-compatible upstream's stream: text, then two tool calls whose arguments arrive in pieces.
CHAT_CHUNKS = [
    {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk", "created": 1741569952, "model": "gpt-5",
     "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    for delta, finish in [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": "Checking "}, None),
        ({"content": "both."}, None),
        ({"tool_calls": [{"index": 0, "id": "call_A1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": '{"location"'}}]}, None),
        ({"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris, FR", "unit": "c"}'}}]}, None),
        ({"tool_calls": [{"index": 1, "id": "call_B2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": '}}]}, None),
        ({"tool_calls": [{"index": 1, "function": {"arguments": '"Europe/Paris"}'}}]}, None),
        ({}, "tool_calls"),
    ]
] + [{"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion.chunk", "created": 1741569952, "model": "gpt-5", "choices": [],
      "usage": {"prompt_tokens": 120, "completion_tokens": 42, "total_tokens": 162, "prompt_tokens_details": {"cached_tokens": 100}}}]


def test_chat_completion_becomes_a_message():
    completion = reassemble_chat(CHAT_CHUNKS)
    message = ta.chat_completion_to_message(oc.ChatCompletion.model_validate(completion).model_dump(), model="claude-sonnet-5")
    at.Message.model_validate(message)
    assert message["id"] == "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG" and message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "Checking both.", "citations": None}
    assert message["content"][2] == {"type": "tool_use", "id": "call_B2", "name": "get_time", "input": {"tz": "Europe/Paris"}, "caller": {"type": "direct"}}
    usage = message["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (20, 42, 0, 100)
    broken = copy.deepcopy(completion)
    broken["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"location": "Par'
    assert ta.chat_completion_to_message(broken, model="m")["content"][1]["input"] == {}


def test_refusal_becomes_a_refusal_message():
    completion = {"id": "chatcmpl-9", "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."}, "finish_reason": "stop"}]}
    message = ta.chat_completion_to_message(completion, model="m")
    at.Message.model_validate(message)
    assert message["content"] == [{"type": "text", "text": "I can't help with that.", "citations": None}] and message["stop_reason"] == "refusal"


@pytest.mark.parametrize("finish, stop_reason", [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")])
def test_finish_reason_maps_to_stop_reason(finish, stop_reason):
    completion = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]}
    assert ta.chat_completion_to_message(completion, model="m")["stop_reason"] == stop_reason


def test_chat_stream_becomes_anthropic_events_in_order():
    events = collect(ta.chat_chunks_to_messages_stream(aiter_of(CHAT_CHUNKS), model="claude-sonnet-5", input_tokens=118))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 3
    open_index = None  # one block open at a time, indexes in order
    for name, data in events:
        if name == "content_block_start":
            assert open_index is None
            open_index = data["index"]
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert events[0][1]["message"]["usage"]["input_tokens"] == 118
    message = reassemble_anthropic(events)  # the SDK's own stream accumulator
    expected = ta.chat_completion_to_message(reassemble_chat(CHAT_CHUNKS), model="claude-sonnet-5")
    assert message.model_dump(exclude_none=True) == at.Message.model_validate(expected).model_dump(exclude_none=True)
    partials = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert len(partials) == 2 and json.loads("".join(partials)) == {"location": "Paris, FR", "unit": "c"}


def test_chat_stream_of_text_only_without_usage():
    chunks = [CHAT_CHUNKS[0], CHAT_CHUNKS[1], {**CHAT_CHUNKS[-2], "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}]
    events = collect(ta.chat_chunks_to_messages_stream(aiter_of(chunks), model="m", input_tokens=7))
    message = reassemble_anthropic(events)
    assert message.content[0].text == "Checking " and message.stop_reason == "max_tokens" and message.usage.input_tokens == 7
    empty = collect(ta.chat_chunks_to_messages_stream(aiter_of([]), model="m", input_tokens=0))
    assert [n for n, _ in empty] == ["message_start", "message_delta", "message_stop"]
    assert reassemble_anthropic(empty).content == []


# ---------------------------------------------------------------- Anthropic: errors

@pytest.mark.parametrize("status, kind", [
    (400, "invalid_request_error"), (401, "authentication_error"), (403, "permission_error"), (404, "not_found_error"),
    (422, "invalid_request_error"), (429, "rate_limit_error"), (500, "api_error"), (502, "api_error"), (529, "overloaded_error"),
])
def test_openai_error_becomes_anthropic_error(status, kind):
    body = ta.openai_error_to_anthropic(status, {"error": {"message": "Nope.", "type": "x", "param": None, "code": None}})
    AnthropicErrorResponse.model_validate(body)
    assert body == {"type": "error", "error": {"type": kind, "message": "Nope."}, "request_id": None}
    assert ta.openai_error_to_anthropic(status, json.dumps({"error": {"message": "Nope."}}).encode())["error"]["message"] == "Nope."


@pytest.mark.parametrize("status, kind, code", [(400, "invalid_request_error", None), (401, "invalid_request_error", "invalid_api_key"),
                                                (429, "requests", "rate_limit_exceeded"), (529, "server_error", None)])
def test_anthropic_error_becomes_openai_error(status, kind, code):
    body = ta.anthropic_error_to_openai(status, {"type": "error", "error": {"type": "some_error", "message": "Bad thing."}, "request_id": "req_1"})
    ErrorObject.model_validate(body["error"])
    assert body == {"error": {"message": "Bad thing.", "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------- Gemini

THOUGHT_SIGNATURE = "CiQB0e2Kb+/sig=="  # standard base64 with + / and padding


def test_json_schema_becomes_gemini_schema():
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"], "description": "Unit"}},
        "properties": {
            "unit": {"$ref": "#/$defs/Unit", "description": "Temperature unit"},
            "city": {"type": ["string", "null"], "format": "uri"},
            "when": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "mode": {"const": "fast"},
            "level": {"type": "integer", "enum": [1, 2]},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
        "required": ["unit", "ghost"],
    }
    assert tg.to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "unit": {"type": "STRING", "enum": ["c", "f"], "description": "Temperature unit"},
            "city": {"type": "STRING", "nullable": True},
            "when": {"type": "STRING", "format": "date-time", "nullable": True},
            "mode": {"type": "STRING", "enum": ["fast"]},
            "level": {"type": "INTEGER", "description": "One of: 1, 2."},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["unit"],
    }
    assert tg.from_gemini_schema({"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}}, "propertyOrdering": ["a"]}) == \
        {"type": "object", "properties": {"a": {"type": ["string", "null"]}}}


def test_chat_request_becomes_a_gemini_request():
    body = tg.chat_to_gemini_request({"model": "gemini-2.5-flash", "messages": CHAT_CONVERSATION, "tools": CHAT_TOOLS,
                                      "tool_choice": {"type": "function", "function": {"name": "get_time"}}, "max_tokens": 256,
                                      "temperature": 0.3, "stop": ["END"], "n": 2,
                                      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}})
    assert body["systemInstruction"] == {"parts": [{"text": "You are a concise assistant."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"][1:] == [{"inlineData": {"mimeType": "image/png", "data": PNG}},
                                                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/paris.jpg"}}]
    assert body["contents"][1]["parts"] == [
        {"text": "That is Paris. Checking."},
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris, FR", "unit": "c"}, "id": "call_weather1"}},
        {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}, "id": "call_time2"}},
    ]  # Gemini 2.x: no signature sentinel
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temperature": 21, "sky": "clear"}, "id": "call_weather1"}},
        {"functionResponse": {"name": "get_time", "response": {"time": "14:05"}, "id": "call_time2"}},
        {"text": "Thanks! Answer in one line."},
    ]
    assert body["tools"][0]["functionDeclarations"][0] == {"name": "get_weather", "description": "Current weather", "parameters": {
        "type": "OBJECT", "properties": {"location": {"type": "STRING", "description": "City and country"}, "unit": {"type": "STRING", "enum": ["c", "f"]}},
        "required": ["location", "unit"]}}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}}
    assert body["generationConfig"] == {"maxOutputTokens": 256, "temperature": 0.3, "candidateCount": 2, "stopSequences": ["END"],
                                        "responseMimeType": "application/json", "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}}
    gemini3 = tg.chat_to_gemini_request({"model": "gemini-3-pro-preview", "messages": CHAT_CONVERSATION})
    assert [p.get("thoughtSignature") for p in gemini3["contents"][1]["parts"]] == [None, "skip_thought_signature_validator", None]


@pytest.mark.parametrize("choice, config", [("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"})])
def test_tool_choice_maps_to_gemini(choice, config):
    body = tg.chat_to_gemini_request({"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}], "tools": CHAT_TOOLS, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


GEMINI_RESPONSE = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "Thinking about the weather...", "thought": True},
            {"text": "Checking the weather."},
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris, FR", "unit": "c"}}, "thoughtSignature": THOUGHT_SIGNATURE},
            {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}}},
        ]},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 210, "candidatesTokenCount": 31, "totalTokenCount": 291, "thoughtsTokenCount": 50, "cachedContentTokenCount": 128},
    "modelVersion": "gemini-3-pro-preview", "responseId": "mWkRaNDtBqzL1PIP0sPzuAs",
}


def test_gemini_response_becomes_a_chat_completion_and_signatures_come_back():
    completion = tg.gemini_response_to_chat_completion(GEMINI_RESPONSE, model="gemini-3-pro-preview")
    oc.ChatCompletion.model_validate(completion)
    content, calls, finish, usage = answer(completion)
    assert content == "Checking the weather." and finish == "tool_calls"
    assert [(name, args) for _, name, args in calls] == [("get_weather", {"location": "Paris, FR", "unit": "c"}), ("get_time", {"tz": "Europe/Paris"})]
    assert usage == {"prompt_tokens": 210, "completion_tokens": 81, "total_tokens": 291, "prompt_tokens_details": {"cached_tokens": 128},
                     "completion_tokens_details": {"reasoning_tokens": 50}}
    # The client sends the tool calls back (ids untouched): the signature returns to Gemini intact.
    history = [{"role": "user", "content": "Weather?"}, {**completion["choices"][0]["message"]},
               *[{"role": "tool", "tool_call_id": c[0], "content": '{"ok": true}'} for c in calls]]
    check_chat_request({"model": "gemini-3-pro-preview", "messages": history})
    body = tg.chat_to_gemini_request({"model": "gemini-3-pro-preview", "messages": history})
    parts = body["contents"][1]["parts"]
    assert parts[1]["thoughtSignature"] == THOUGHT_SIGNATURE and "thoughtSignature" not in parts[2]
    assert [p["functionResponse"]["id"] for p in body["contents"][2]["parts"]] == [p["functionCall"]["id"] for p in parts[1:]]


def test_gemini_edge_shapes():
    blocked = tg.gemini_response_to_chat_completion({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}, model="g")
    oc.ChatCompletion.model_validate(blocked)
    assert blocked["choices"][0]["finish_reason"] == "content_filter" and blocked["usage"]["prompt_tokens"] == 9
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}
    params = tg.gemini_to_chat_request("g", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                             "tools": [{"functionDeclarations": [{"name": "search", "parametersJsonSchema": schema}, {"name": "ping"}, {"name": "pong"}]}],
                                             "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["search", "ping"]}},
                                             "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema}})
    check_chat_request(params)
    assert params["tools"][0]["function"]["parameters"] == schema and [t["function"]["name"] for t in params["tools"]] == ["search", "ping"]
    assert params["tool_choice"] == "required" and params["response_format"]["json_schema"]["schema"] == schema
    body = tg.chat_to_gemini_request({"model": "g", "messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "ping"}}]}}})
    assert body["tools"] == [{"functionDeclarations": [{"name": "ping"}]}]  # no properties: no parameters (Gemini rejects an empty OBJECT)
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["ping"]}}


@pytest.mark.parametrize("reason, finish", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "stop")])
def test_gemini_finish_reason(reason, finish):
    resp = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": reason, "index": 0}]}
    assert tg.gemini_response_to_chat_completion(resp, model="g")["choices"][0]["finish_reason"] == finish


def test_gemini_stream_reassembles_to_the_response_translation():
    parts = GEMINI_RESPONSE["candidates"][0]["content"]["parts"]
    responses = [
        {"candidates": [{"content": {"role": "model", "parts": [parts[0]]}, "index": 0}], "responseId": "mWkRaNDtBqzL1PIP0sPzuAs"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking the "}]}, "index": 0}], "responseId": "mWkRaNDtBqzL1PIP0sPzuAs"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "weather."}, parts[2]]}, "index": 0}], "responseId": "mWkRaNDtBqzL1PIP0sPzuAs"},
        {"candidates": [{"content": {"role": "model", "parts": [parts[3]]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": GEMINI_RESPONSE["usageMetadata"], "responseId": "mWkRaNDtBqzL1PIP0sPzuAs"},
    ]
    chunks = collect(tg.gemini_stream_to_chat_chunks(aiter_of(responses), model="gemini-3-pro-preview", include_usage=True))
    streamed, direct = reassemble_chat(chunks), tg.gemini_response_to_chat_completion(GEMINI_RESPONSE, model="gemini-3-pro-preview")
    strip_ids = lambda a: (a[0], [(tg._split_id({"id": i})[1], n, args) for i, n, args in a[1]], a[2], a[3])  # noqa: E731 (ids are minted)
    assert strip_ids(answer(streamed)) == strip_ids(answer(direct))
    assert streamed["id"] == direct["id"] == "chatcmpl-mWkRaNDtBqzL1PIP0sPzuAs"
    with pytest.raises(UpstreamError) as raised:
        collect(tg.gemini_stream_to_chat_chunks(aiter_of([responses[0], {"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}]),
                                                model="g", include_usage=False))
    assert raised.value.status_code == 429 and raised.value.body["error"]["code"] == "rate_limit_exceeded"


GEMINI_REQUEST = {  # snake_case, as Google's curl examples write it
    "system_instruction": {"parts": [{"text": "Be brief."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}, {"inline_data": {"mime_type": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris, FR", "unit": "c"}}, "thoughtSignature": THOUGHT_SIGNATURE},
                                    {"functionCall": {"name": "get_weather", "args": {"location": "Rome, IT", "unit": "c"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temperature": 21}}},
                                   {"functionResponse": {"name": "get_weather", "response": {"temperature": 25}}}]},
    ],
    "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather", "parameters": {
        "type": "OBJECT", "properties": {"location": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["c", "f"]}}, "required": ["location"]}}]},
        {"googleSearch": {}}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    "generationConfig": {"maxOutputTokens": 300, "temperature": 0.5, "topK": 40, "stopSequences": ["END"], "responseMimeType": "application/json"},
    "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
}


def test_gemini_request_becomes_a_valid_chat_request():
    params = tg.gemini_to_chat_request("gemini-2.5-flash", GEMINI_REQUEST)
    check_chat_request(params)
    system, user, assistant, first, second = params["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert len(set(ids)) == 2 and [first["tool_call_id"], second["tool_call_id"]] == ids  # answered in order, by name
    assert first["content"] == '{"temperature": 21}'
    assert params["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["location"]}}}]
    assert params["tool_choice"] == "required" and params["max_completion_tokens"] == 300 and params["stop"] == ["END"]
    assert params["response_format"] == {"type": "json_object"} and "top_k" not in params
    assert tg.gemini_to_chat_request("g", GEMINI_REQUEST) == tg.gemini_to_chat_request("g", GEMINI_REQUEST)  # deterministic
    # with ids, a response answers its own call whatever the order
    with_ids = copy.deepcopy(GEMINI_REQUEST)
    for n, part in enumerate(with_ids["contents"][1]["parts"]):
        part["functionCall"]["id"] = f"fc-{n}"
    with_ids["contents"][2]["parts"].reverse()
    for n, part in zip((1, 0), with_ids["contents"][2]["parts"]):
        part["functionResponse"]["id"] = f"fc-{n}"
    paired = tg.gemini_to_chat_request("g", with_ids)["messages"]
    call_ids = [c["id"] for c in paired[2]["tool_calls"]]
    assert call_ids[0].startswith("fc-0_ts_") and call_ids[1] == "fc-1"
    assert [(m["tool_call_id"], m["content"]) for m in paired[3:]] == [(call_ids[1], '{"temperature": 25}'), (call_ids[0], '{"temperature": 21}')]
    # and back: the signature the client sent reaches Gemini again
    again = tg.chat_to_gemini_request(params)
    assert again["contents"][1]["parts"][0]["thoughtSignature"] == THOUGHT_SIGNATURE


def test_chat_to_gemini_to_chat_keeps_the_conversation():
    body = tg.chat_to_gemini_request({"model": "gemini-2.5-flash", "messages": CHAT_CONVERSATION, "tools": CHAT_TOOLS})
    back = tg.gemini_to_chat_request("gemini-2.5-flash", body)
    check_chat_request(back)
    assert normalise_chat(back["messages"]) == normalise_chat(CHAT_CONVERSATION)
    assert [t["function"]["name"] for t in back["tools"]] == ["get_weather", "get_time"]


def test_chat_completion_and_stream_become_gemini_responses():
    completion = reassemble_chat(CHAT_CHUNKS)
    resp = tg.chat_completion_to_gemini_response(completion)
    assert resp["candidates"][0] == {"content": {"role": "model", "parts": [
        {"text": "Checking both."},
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris, FR", "unit": "c"}, "id": "call_A1"}},
        {"functionCall": {"name": "get_time", "args": {"tz": "Europe/Paris"}, "id": "call_B2"}}]}, "finishReason": "STOP", "index": 0}
    assert resp["usageMetadata"] == {"promptTokenCount": 120, "candidatesTokenCount": 42, "totalTokenCount": 162, "cachedContentTokenCount": 100}
    assert resp["responseId"] == "B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    streamed = collect(tg.chat_chunks_to_gemini_stream(aiter_of(CHAT_CHUNKS)))
    parts = [p for r in streamed for c in r["candidates"] for p in c["content"]["parts"]]
    merged = [{"text": "".join(p["text"] for p in parts if "text" in p)}] + [p for p in parts if "functionCall" in p]
    assert merged == resp["candidates"][0]["content"]["parts"]
    assert streamed[-1]["usageMetadata"] == resp["usageMetadata"] and streamed[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in c for r in streamed[:-1] for c in r["candidates"])
    # the Gemini stream read back by our own translator gives the same completion
    assert answer(reassemble_chat(collect(tg.gemini_stream_to_chat_chunks(aiter_of(streamed), model="g", include_usage=False))))[:3] == answer(completion)[:3]


@pytest.mark.parametrize("status, name", [(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
                                          (429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE"), (422, "INVALID_ARGUMENT")])
def test_gemini_errors_both_ways(status, name):
    body = tg.openai_error_to_gemini(status, {"error": {"message": "Nope.", "type": "x", "param": None, "code": None}})
    assert body == {"error": {"code": status, "message": "Nope.", "status": name}}
    back = tg.gemini_error_to_openai(status, body)
    ErrorObject.model_validate(back["error"])
    assert back["error"]["message"] == "Nope." and back["error"]["type"] == ("server_error" if status >= 500 else "requests" if status == 429 else "invalid_request_error")
