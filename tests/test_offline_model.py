"""The offline model as a unit: determinism, tools, structured outputs, streaming, usage, embeddings,
moderations. Every output is checked against the openai SDK's own response models."""
from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from datetime import date, datetime
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from openai.types import Completion, CreateEmbeddingResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.moderation import Categories

from app.core.errors import APIError
from app.core.tokens import count_chat_tokens, count_tokens, encode
from app.inference.chunks import ChunkAccumulator
from app.inference.providers.offline import OfflineProvider, reply_text, value_for_schema
from app.inference.providers.offline.schema import value_for_schema as schema_value_for_schema

ROOT = Path(__file__).resolve().parent.parent
provider = OfflineProvider(chunk_delay_ms=0)


def run(coro):
    return asyncio.run(coro)


def chat(**params) -> dict:
    params.setdefault("model", "gpt-4o-mini")
    body = run(provider.chat(params))
    ChatCompletion.model_validate(body)
    return body


def stream(method: str = "chat_stream", **params) -> list[dict]:
    params.setdefault("model", "gpt-4o-mini")

    async def collect():
        return [chunk async for chunk in getattr(provider, method)(params)]

    return run(collect())


def user(text, **extra) -> list[dict]:
    return [{"role": "user", "content": text, **extra}]


def content(body: dict, index: int = 0) -> str:
    return body["choices"][index]["message"]["content"]


def strip_volatile(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("id", "created")}


# -- schemas for tool arguments and structured outputs ---------------------------------------------------
WEATHER = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "City"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["location", "unit"],
    "additionalProperties": False,
}
NESTED = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 2},
                "email": {"type": "string", "format": "email"},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
            },
            "required": ["name", "email", "age"],
            "additionalProperties": False,
        },
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "zip": {"type": "string", "pattern": "^\\d{5}$"}, "country": {"const": "FR"}},
            "required": ["street", "zip", "country"],
        },
        "vip": {"type": "boolean"},
    },
    "required": ["customer", "address"],
}
ARRAYS = {
    "type": "object",
    "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 2, "maxItems": 4, "uniqueItems": True},
        "scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "maxItems": 2},
        "colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 3, "maxItems": 3, "uniqueItems": True},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False, "minItems": 2},
    },
    "required": ["tags", "scores", "colors", "pair"],
}
FORMATS = {
    "type": "object",
    "properties": {
        "when": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "homepage": {"type": "string", "format": "uri"},
        "request_id": {"type": "string", "format": "uuid"},
        "contact": {"type": "string", "format": "email"},
        "kind": {"const": "event"},
    },
    "required": ["when", "day", "homepage", "request_id", "contact", "kind"],
}
REFS = {
    "$defs": {
        "line": {
            "type": "object",
            "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-\\d{4}$"}, "qty": {"type": "integer", "minimum": 1, "maximum": 10}},
            "required": ["sku", "qty"],
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1, "maxItems": 3}, "primary": {"$ref": "#/$defs/line"}},
    "required": ["lines", "primary"],
}
UNIONS = {
    "type": "object",
    "properties": {
        "note": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
        "speed": {"oneOf": [{"const": "fast"}, {"const": "slow"}]},
        "limit": {"type": ["integer", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 5},
        "ratio": {"type": "number", "multipleOf": 0.25, "minimum": 1, "maximum": 3},
        "step": {"type": "integer", "multipleOf": 5, "minimum": 7, "maximum": 40},
        "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
    },
    "required": ["note", "speed", "limit", "ratio", "step", "both"],
}
STRINGS = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "minLength": 10, "maxLength": 12},
        "short": {"type": "string", "maxLength": 3},
        "color": {"type": "string", "pattern": "^(red|green|blue)$"},
        "ident": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,8}$"},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
    },
    "required": ["code", "short", "color", "ident", "extra"],
}
RECURSIVE = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            "required": ["name", "children"],
            "additionalProperties": False,
        }
    },
    "$ref": "#/$defs/node",
}
SCHEMAS = {"weather": WEATHER, "nested": NESTED, "arrays": ARRAYS, "formats": FORMATS, "refs": REFS, "unions": UNIONS, "strings": STRINGS, "recursive": RECURSIVE}


def assert_valid(value, schema) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(value)
    # formats the installed jsonschema may not check by itself
    if schema is FORMATS:
        datetime.fromisoformat(value["when"].replace("Z", "+00:00"))
        date.fromisoformat(value["day"])
        parsed = urllib.parse.urlparse(value["homepage"])
        assert parsed.scheme == "https" and parsed.netloc
        assert str(uuid.UUID(value["request_id"])) == value["request_id"]
        assert "@" in value["contact"]


def tool(name: str, parameters: dict | None = None) -> dict:
    function = {"name": name, "description": f"The {name} tool"}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


WEATHER_TOOLS = [tool("get_weather", WEATHER), tool("search_web", {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})]


# -- determinism and replies --------------------------------------------------------------------------------
def test_same_request_same_output_and_ignored_fields():
    messages = user("Summarise the history of the Eiffel Tower in Paris")
    first, second = chat(messages=messages), chat(messages=messages)
    assert first["id"].startswith("chatcmpl-") and first["id"] != second["id"]
    assert strip_volatile(first) == strip_volatile(second)
    assert first["object"] == "chat.completion" and first["model"] == "gpt-4o-mini" and first["system_fingerprint"] == "fp_offline"
    bookkeeping = chat(messages=messages, user="u-1", metadata={"a": "b"}, store=True, stream_options={"include_usage": True})
    assert content(bookkeeping) == content(first)
    assert len({content(chat(messages=messages, temperature=t / 10)) for t in range(1, 9)}) >= 3  # part of the seed hash


def test_seed_changes_output():
    messages = user("Recommend a good book about astronomy")
    by_seed = {seed: content(chat(messages=messages, seed=seed)) for seed in range(1, 9)}
    assert len(set(by_seed.values())) >= 3
    assert content(chat(messages=messages, seed=3)) == by_seed[3]


def test_reply_quotes_and_names_key_words_of_last_user_message():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Tell me about volcanoes"},
        {"role": "assistant", "content": "Volcanoes are vents."},
        {"role": "user", "content": [{"type": "text", "text": "Explain photosynthesis in chloroplasts"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
    ]
    text = content(chat(messages=messages))
    assert '"Explain photosynthesis in chloroplasts"' in text
    assert "photosynthesis" in text and "chloroplasts" in text and "volcano" not in text.lower()
    assert "1 attached image" in text
    assert reply_text(messages, __import__("random").Random(1)).count("photosynthesis") >= 1


def test_parameter_errors_are_400s_naming_the_param():
    cases = [
        (dict(messages=[]), "messages"),
        (dict(messages=user("hi"), n=0), "n"),
        (dict(messages=user("hi"), max_tokens=0), "max_tokens"),
        (dict(messages=user("hi"), stop=["a", "b", "c", "d", "e"]), "stop"),
        (dict(messages=user("hi"), tools=WEATHER_TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}), "tool_choice"),
        (dict(messages=user("hi"), tool_choice="required"), "tool_choice"),
        (dict(messages=user("hi"), response_format={"type": "xml"}), "response_format.type"),
    ]
    for params, param in cases:
        with pytest.raises(APIError) as raised:
            chat(**params)
        assert raised.value.status_code == 400 and raised.value.param == param
    with pytest.raises(APIError):  # a stream raises on its first step, before any chunk
        stream(messages=[], stream=True)


# -- tools -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_required_tool_call_arguments_validate(name):
    schema = SCHEMAS[name]
    for seed in range(25):
        body = chat(messages=user(f"Please fill in the {name} form for Lyon"), tools=[tool(f"fill_{name}", schema)], tool_choice="required", seed=seed)
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["id"].startswith("call_") and call["function"]["name"] == f"fill_{name}"
        assert_valid(json.loads(call["function"]["arguments"]), schema)


def test_value_for_schema_is_seeded_and_uses_prompt_words():
    import random

    assert value_for_schema(NESTED, random.Random(5)) == schema_value_for_schema(NESTED, random.Random(5))
    values = {json.dumps(value_for_schema(NESTED, random.Random(seed)), sort_keys=True) for seed in range(10)}
    assert len(values) > 5
    assert value_for_schema({"type": "string"}, random.Random(1), words=["Kilimanjaro"]) == "Kilimanjaro"
    assert value_for_schema({}, random.Random(1), words=["x"]) == "x"


def test_tool_choice_modes():
    mention = user("What does get weather say for Oslo?")
    auto = chat(messages=mention, tools=WEATHER_TOOLS)["choices"][0]
    assert [c["function"]["name"] for c in auto["message"]["tool_calls"]] == ["get_weather"]
    assert json.loads(auto["message"]["tool_calls"][0]["function"]["arguments"])["location"] == "Oslo"
    no_mention = chat(messages=user("What is the tallest mountain?"), tools=WEATHER_TOOLS)["choices"][0]
    assert "tool_calls" not in no_mention["message"] and "tallest" in no_mention["message"]["content"]
    assert "tool_calls" not in chat(messages=mention, tools=WEATHER_TOOLS, tool_choice="none")["choices"][0]["message"]
    required = chat(messages=user("What is the tallest mountain?"), tools=WEATHER_TOOLS, tool_choice="required")["choices"][0]
    assert [c["function"]["name"] for c in required["message"]["tool_calls"]] == ["get_weather"]
    named = chat(messages=mention, tools=WEATHER_TOOLS, tool_choice={"type": "function", "function": {"name": "search_web"}})["choices"][0]
    assert [c["function"]["name"] for c in named["message"]["tool_calls"]] == ["search_web"]
    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "search_web"}}]}}
    assert chat(messages=mention, tools=WEATHER_TOOLS, tool_choice=allowed)["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_web"
    assert "tool_calls" in chat(messages=user("call GET_WEATHER now"), tools=WEATHER_TOOLS)["choices"][0]["message"]
    assert "tool_calls" not in chat(messages=user("forget_weathering happens"), tools=WEATHER_TOOLS)["choices"][0]["message"]


def test_parallel_tool_calls():
    messages = user("Use search_web for flights, then get-weather for Rome")
    calls = chat(messages=messages, tools=WEATHER_TOOLS)["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["search_web", "get_weather"]
    assert len({c["id"] for c in calls}) == 2
    single = chat(messages=messages, tools=WEATHER_TOOLS, parallel_tool_calls=False)["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in single] == ["search_web"]


def test_tool_results_are_answered_in_text():
    first = chat(messages=user("get_weather for Paris please"), tools=WEATHER_TOOLS)
    call = first["choices"][0]["message"]["tool_calls"][0]
    follow_up = user("get_weather for Paris please") + [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": "22 degrees", "sky": "sunny"}'},
    ]
    answer = chat(messages=follow_up, tools=WEATHER_TOOLS)["choices"][0]
    assert answer["finish_reason"] == "stop" and "tool_calls" not in answer["message"]
    assert "get_weather" in answer["message"]["content"] and "22 degrees" in answer["message"]["content"] and "sunny" in answer["message"]["content"]


def test_legacy_functions_and_parameterless_tools():
    body = chat(messages=user("run ping"), functions=[{"name": "ping"}], function_call="auto")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call" and choice["message"]["function_call"] == {"name": "ping", "arguments": "{}"}
    chunks = stream(messages=user("run ping"), functions=[{"name": "ping"}])
    assert "".join((c["choices"][0]["delta"].get("function_call") or {}).get("arguments", "") for c in chunks if c["choices"]) == "{}"
    bare = chat(messages=user("now"), tools=[tool("now", {})], tool_choice="required")["choices"][0]["message"]["tool_calls"][0]
    assert bare["function"]["arguments"] == "{}"


# -- structured outputs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_json_schema_output_validates(name):
    schema = SCHEMAS[name]
    outputs = set()
    for seed in range(10):
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        text = content(chat(messages=user("Describe a trip to Kyoto"), response_format=fmt, seed=seed))
        assert_valid(json.loads(text), schema)
        outputs.add(text)
    assert len(outputs) > 1


def test_json_object_output():
    value = json.loads(content(chat(messages=user("List facts about penguins as JSON"), response_format={"type": "json_object"})))
    assert isinstance(value, dict) and "penguins" in value["answer"] and "penguins" in value["keywords"]


# -- streaming ---------------------------------------------------------------------------------------------
STREAM_CASES = {
    "text": dict(messages=user("Describe the Amazon rainforest ecosystem")),
    "logprobs": dict(messages=user("Describe the Amazon rainforest"), logprobs=True, top_logprobs=3),
    "tools": dict(messages=user("search_web and get_weather for Nairobi"), tools=WEATHER_TOOLS),
    "n": dict(messages=user("Name a colour"), n=3),
    "schema": dict(messages=user("A trip"), response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": NESTED}}),
    "length": dict(messages=user("Describe the Amazon rainforest ecosystem"), max_tokens=7, logprobs=True),
    "unicode": dict(messages=user("Café crème, naïve résumé — 日本語のテキスト 🚀🚀")),
}


@pytest.mark.parametrize("case", sorted(STREAM_CASES))
def test_stream_reassembles_to_the_non_stream_answer(case):
    params = STREAM_CASES[case]
    whole = chat(**params)
    chunks = stream(**params, stream=True, stream_options={"include_usage": True})
    accumulator = ChunkAccumulator()
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == chunks[0]["id"] and chunk["model"] == "gpt-4o-mini"
        accumulator.add(chunk)
    rebuilt = accumulator.completion()
    for got, want in zip(rebuilt["choices"], whole["choices"], strict=True):
        assert got["message"]["content"] == want["message"]["content"]
        assert got["message"].get("tool_calls") == want["message"].get("tool_calls")
        assert got["finish_reason"] == want["finish_reason"]
        assert got["logprobs"] == want["logprobs"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert all(c["usage"] is None for c in chunks[:-1])
    for chunk in chunks[:-1]:
        delta = chunk["choices"][0]["delta"]
        if delta.get("content"):
            assert len(delta["content"].strip().split()) <= 1 or case == "unicode"  # word-sized
        for call in delta.get("tool_calls") or ():
            if "id" in call:
                assert call["function"] == {"name": call["function"]["name"], "arguments": ""} and call["type"] == "function"
            else:
                assert 1 <= len(call["function"]["arguments"]) <= 8
    first = [c for c in chunks if c["choices"]][0]["choices"][0]["delta"]
    assert first["role"] == "assistant"


def test_stream_without_include_usage_and_with_delay():
    chunks = stream(messages=user("hello there"))
    assert "usage" not in chunks[-1] and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    slow = OfflineProvider(chunk_delay_ms=15)

    async def timed():
        start = time.perf_counter()
        items = [c async for c in slow.chat_stream({"model": "m", "messages": user("one two three")})]
        return items, time.perf_counter() - start

    items, elapsed = run(timed())
    assert elapsed >= 0.015 * (len(items) - 1) * 0.9
    os.environ["UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS"] = "12.5"
    try:
        assert OfflineProvider().chunk_delay_ms == 12.5 and OfflineProvider(chunk_delay_ms=0).chunk_delay_ms == 0
    finally:
        del os.environ["UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS"]
    assert OfflineProvider().chunk_delay_ms == 0


# -- length, stop, logprobs, usage ---------------------------------------------------------------------------
def test_max_tokens_truncates_with_finish_reason_length():
    messages = user("Describe the migration of monarch butterflies across North America")
    full = content(chat(messages=messages))
    for key in ("max_tokens", "max_completion_tokens"):
        body = chat(messages=messages, **{key: 6})
        assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 6
        assert full.startswith(content(body)) and count_tokens(content(body)) <= 6 < count_tokens(full)
    assert chat(messages=messages, max_tokens=500)["choices"][0]["finish_reason"] == "stop"
    call = chat(messages=user("get_weather"), tools=WEATHER_TOOLS, max_tokens=5)["choices"][0]
    assert call["finish_reason"] == "length" and call["message"]["tool_calls"]


def test_stop_sequences():
    messages = user("Describe the migration of monarch butterflies")
    full = content(chat(messages=messages))
    body = chat(messages=messages, stop=["monarch"])
    assert body["choices"][0]["finish_reason"] == "stop" and content(body) == full[: full.index("monarch")]


def test_logprobs_are_plausible():
    body = chat(messages=user("Describe the Amazon rainforest"), logprobs=True, top_logprobs=4)
    entries = body["choices"][0]["logprobs"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    assert b"".join(bytes(e["bytes"]) for e in entries).decode() == content(body)
    for entry in entries:
        assert entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 4
        lps = [t["logprob"] for t in entry["top_logprobs"]]
        assert lps == sorted(lps, reverse=True) and sum(math.exp(x) for x in lps) <= 1.0 + 1e-6
        assert entry["token"] in [t["token"] for t in entry["top_logprobs"]]
    assert chat(messages=user("Describe the Amazon rainforest"))["choices"][0]["logprobs"] is None


def test_token_counts_match_tiktoken_and_the_cookbook():
    assert encode("hello world") == [15339, 1917] and count_tokens("tiktoken is great!") == 6 and count_tokens("") == 0
    cookbook = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
        {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]
    assert count_chat_tokens(cookbook) == 129  # OpenAI's cookbook: the API bills 129 for these
    body = chat(messages=cookbook)
    assert body["usage"]["prompt_tokens"] == 129 and body["usage"]["completion_tokens"] == count_tokens(content(body))
    assert body["usage"]["total_tokens"] == 129 + body["usage"]["completion_tokens"]
    assert chat(messages=cookbook, tools=WEATHER_TOOLS, tool_choice="none")["usage"]["prompt_tokens"] > 129


def test_token_counting_needs_no_network(tmp_path):
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from app.core.tokens import count_tokens\n"
        "print(count_tokens('hello world'))\n"
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2" and list(cache.iterdir()) == []


# -- legacy completions ------------------------------------------------------------------------------------
def completion(**params) -> dict:
    params.setdefault("model", "gpt-3.5-turbo-instruct")
    body = run(provider.completions(params))
    Completion.model_validate(body)
    return body


def test_legacy_completions():
    body = completion(prompt="The lighthouse keeper watched the storm", max_tokens=60)
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    text = body["choices"][0]["text"]
    assert "lighthouse" in text and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == count_tokens(text) and body["usage"]["prompt_tokens"] == count_tokens("The lighthouse keeper watched the storm")
    assert completion(prompt="The lighthouse keeper watched the storm")["choices"][0]["finish_reason"] == "length"  # OpenAI's default max_tokens 16
    echoed = completion(prompt="Once upon a time", echo=True, logprobs=2, suffix="ignored", max_tokens=60)
    assert echoed["choices"][0]["text"].startswith("Once upon a time ")
    lp = echoed["choices"][0]["logprobs"]
    assert "".join(lp["tokens"]) == echoed["choices"][0]["text"] and lp["text_offset"][0] == 0 and all(len(t) <= 2 for t in lp["top_logprobs"])
    many = completion(prompt=["alpha beta", "gamma delta"], n=2, best_of=3, max_tokens=60)
    assert [c["index"] for c in many["choices"]] == [0, 1, 2, 3]
    assert "beta" in many["choices"][1]["text"] and "delta" in many["choices"][3]["text"]
    assert many["usage"]["prompt_tokens"] == count_tokens("alpha beta") + count_tokens("gamma delta")
    tokens = completion(prompt=[[15339, 1917], [15339]], max_tokens=60)
    assert "world" in tokens["choices"][0]["text"] and tokens["usage"]["prompt_tokens"] == 3
    with pytest.raises(APIError) as raised:
        completion(prompt="x", n=3, best_of=2)
    assert raised.value.param == "best_of"
    chunks = stream("completions_stream", model="gpt-3.5-turbo-instruct", prompt="Once upon a time", echo=True, logprobs=1, suffix="ignored", max_tokens=60, stream_options={"include_usage": True})
    for chunk in chunks:  # OpenAI streams finish_reason null until the end, which the SDK parses leniently
        Completion.model_validate({**chunk, "choices": [{**c, "finish_reason": c["finish_reason"] or "stop"} for c in chunk["choices"]]})
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == echoed["choices"][0]["text"]
    streamed_tokens = [t for c in chunks if c["choices"] and c["choices"][0]["logprobs"] for t in c["choices"][0]["logprobs"]["tokens"]]
    assert streamed_tokens == lp["tokens"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == echoed["usage"]


# -- embeddings --------------------------------------------------------------------------------------------
def embed(**params) -> dict:
    body = run(provider.embeddings(params))
    if params.get("encoding_format") == "base64":  # the SDK decodes base64 itself; its model holds floats
        assert all(isinstance(d["embedding"], str) for d in body["data"])
        CreateEmbeddingResponse.model_validate({**body, "data": [{**d, "embedding": []} for d in body["data"]]})
    else:
        CreateEmbeddingResponse.model_validate(body)
    return body


def test_embedding_dimensions_norm_and_determinism():
    for model, dim in (("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536), ("my-embedder", 1536)):
        body = embed(model=model, input="hello world")
        vector = np.array(body["data"][0]["embedding"])
        assert body["model"] == model and len(vector) == dim and abs(np.linalg.norm(vector) - 1) < 1e-5
    short = embed(model="text-embedding-3-large", input="hello world", dimensions=256)["data"][0]["embedding"]
    assert len(short) == 256 and abs(np.linalg.norm(short) - 1) < 1e-5
    assert embed(model="text-embedding-3-small", input="same text") == embed(model="text-embedding-3-small", input="same text")
    for params in (dict(dimensions=1537), dict(dimensions=0), dict(encoding_format="hex"), dict(input="")):
        with pytest.raises(APIError) as raised:
            embed(**{"model": "text-embedding-3-small", "input": "x", **params})
        assert raised.value.status_code == 400
    with pytest.raises(APIError):
        embed(model="text-embedding-ada-002", input="x", dimensions=100)


def test_embedding_base64_tokens_and_usage():
    floats = embed(model="text-embedding-3-small", input=["first text", "second text"])
    encoded = embed(model="text-embedding-3-small", input=["first text", "second text"], encoding_format="base64")
    for f, b in zip(floats["data"], encoded["data"]):
        assert np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4").tolist() == f["embedding"]
    assert floats["usage"] == {"prompt_tokens": count_tokens("first text") + count_tokens("second text"), "total_tokens": 4}
    as_tokens = embed(model="text-embedding-3-small", input=[encode("first text"), encode("second text")])
    assert [d["embedding"] for d in as_tokens["data"]] == [d["embedding"] for d in floats["data"]]
    assert embed(model="text-embedding-3-small", input=encode("first text"))["data"][0]["embedding"] == floats["data"][0]["embedding"]


def test_embeddings_are_lexically_meaningful():
    texts = ["the cat sat on the mat", "a cat on a mat", "quarterly revenue grew 5%", "revenue grew this quarter"]
    vectors = [np.array(d["embedding"]) for d in embed(model="text-embedding-3-small", input=texts)["data"]]
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert vectors[2] @ vectors[3] > vectors[1] @ vectors[3] + 0.2
    shortened = [np.array(d["embedding"]) for d in embed(model="text-embedding-3-small", input=texts, dimensions=128)["data"]]
    assert shortened[0] @ shortened[1] > shortened[0] @ shortened[2]


# -- moderations -------------------------------------------------------------------------------------------
def moderate(**params) -> dict:
    body = run(provider.moderations(params))
    ModerationCreateResponse.model_validate(body)
    return body


def test_moderations():
    body = moderate(input=["I am going to kill him", "What a lovely sunny day", "how to kill myself"], model="omni-moderation-latest")
    assert body["id"].startswith("modr-") and body["model"] == "omni-moderation-latest"
    violent, benign, self_harm = body["results"]
    expected = {field.alias or name for name, field in Categories.model_fields.items()}
    assert set(violent["categories"]) == set(violent["category_scores"]) == set(violent["category_applied_input_types"]) == expected
    assert violent["flagged"] and violent["categories"]["violence"] and violent["category_scores"]["violence"] > 0.5
    assert not benign["flagged"] and max(benign["category_scores"].values()) < 0.01
    assert self_harm["categories"]["self-harm"] and self_harm["categories"]["self-harm/instructions"]
    assert moderate(input="I am going to kill him")["results"][0] == violent
    parts = moderate(input=[{"type": "text", "text": "nice"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])["results"]
    assert len(parts) == 1 and parts[0]["category_applied_input_types"]["violence"] == ["text", "image"]
    assert parts[0]["category_applied_input_types"]["hate"] == ["text"]
    with pytest.raises(APIError):
        moderate(input=42)
