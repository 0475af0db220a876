"""Chat completions on the offline model through the official SDK: plain, streamed, tools, structured
outputs, stored completions; and the stateless calls (legacy completions, embeddings, moderations)."""
from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


def ask(client, text: str, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kwargs)


def test_plain_completion(client, http):
    completion = ask(client, "Tell me about lighthouses")
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == MODEL
    message = completion.choices[0].message
    assert message.role == "assistant" and message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    raw = http.post("/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert raw.status_code == 200
    assert_matches_schema(raw.json(), "CreateChatCompletionResponse")


def test_same_request_same_answer_and_seed_changes_it(client):
    first, again = ask(client, "Describe a red bicycle"), ask(client, "Describe a red bicycle")
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.id != again.id
    seeded = [ask(client, "Describe a red bicycle", seed=s).choices[0].message.content for s in (1, 2, 3)]
    assert len(set(seeded)) > 1


def test_stream_reassembles_to_the_same_answer(client):
    whole = ask(client, "Explain tides briefly").choices[0].message.content
    chunks = list(ask(client, "Explain tides briefly", stream=True, stream_options={"include_usage": True}))
    assert len(chunks) > 3
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_stream_is_server_sent_events_ending_with_done(http):
    with http.stream("POST", "/chat/completions", json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_required_tool_call_has_schema_valid_arguments(client):
    completion = ask(client, "What should I wear?", tools=[WEATHER], tool_choice="required")
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.id
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"} and arguments["unit"] in ("c", "f")


def test_auto_calls_a_tool_only_when_named(client):
    assert ask(client, "Hello there", tools=[WEATHER]).choices[0].message.tool_calls in (None, [])
    named = ask(client, "Please call get_weather for Oslo", tools=[WEATHER])
    assert named.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_tool_result_is_mentioned_in_the_answer(client):
    first = ask(client, "What should I wear?", tools=[WEATHER], tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    follow_up = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What should I wear?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "Drizzle and 11 degrees"},
        ],
    )
    assert "Drizzle" in follow_up.choices[0].message.content


def test_structured_output_parses(client):
    class Trip(BaseModel):
        city: str
        days: int
        sights: list[str]

    parsed = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": "Plan a trip"}], response_format=Trip)
    trip = parsed.choices[0].message.parsed
    assert isinstance(trip, Trip) and isinstance(trip.sights, list)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert error.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "bogus": 1}, "bogus"),
    ],
)
def test_bad_requests_are_openai_400s(http, body, param):
    assert_openai_error(http.post("/chat/completions", json=body), 400, param=param)


# --- stored completions -----------------------------------------------------------------------------


def test_stored_completion_lifecycle(client, http):
    made = ask(client, "Store this one", store=True, metadata={"topic": "docs"})
    ask(client, "Not stored")
    streamed = list(ask(client, "Stored while streaming", store=True, stream=True))
    listed = client.chat.completions.list()
    assert [c.id for c in listed.data] == [made.id, streamed[0].id]
    assert_matches_schema(http.get("/chat/completions").json(), "ChatCompletionList")
    again = client.chat.completions.retrieve(made.id)
    assert again.choices[0].message.content == made.choices[0].message.content
    assert [c.id for c in client.chat.completions.list(metadata={"topic": "docs"}).data] == [made.id]
    assert client.chat.completions.list(model="gpt-4o").data == []
    updated = client.chat.completions.update(made.id, metadata={"topic": "faq"})
    assert updated.metadata == {"topic": "faq"}
    messages = client.chat.completions.messages.list(made.id)
    assert [(m.role, m.content) for m in messages.data] == [("user", "Store this one")]
    deleted = client.chat.completions.delete(made.id)
    assert deleted.deleted and deleted.object == "chat.completion.deleted"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(made.id)


def test_stored_completions_are_per_tenant(client, server):
    made = ask(client, "Mine", store=True)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.retrieve(made.id)
        assert other.chat.completions.list().data == []


# --- stateless calls ----------------------------------------------------------------------------------


def test_legacy_completion(client, http):
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time")
    assert completion.object == "text_completion" and completion.choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once upon a time", stream=True))
    assert streamed == completion.choices[0].text
    assert_matches_schema(http.post("/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": "x"}).json(), "CreateCompletionResponse")


def test_embeddings(client, http):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a cat on a mat", "the cat sat on the mat", "quarterly revenue"])
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [1536] * 3

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    small = client.embeddings.create(model="text-embedding-3-large", input="hi", dimensions=256)
    assert len(small.data[0].embedding) == 256
    raw = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": "hi"}).json()
    assert_matches_schema(raw, "CreateEmbeddingResponse")


def test_moderations(client, http):
    result = client.moderations.create(input=["I will kill you", "Have a lovely day"])
    assert result.results[0].flagged and not result.results[1].flagged
    assert_matches_schema(http.post("/moderations", json={"input": "hello"}).json(), "CreateModerationResponse")
