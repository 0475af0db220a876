"""Payloads OpenAI and Anthropic accept that clients really send, through the official SDKs: replayed
output items as input (Agents SDK sessions, LangChain with use_responses_api=True), arrays of token
arrays (LangChain's OpenAIEmbeddings), Anthropic's structured-outputs beta (litellm); and the errors
for what they refuse, naming the deepest failing field."""
from __future__ import annotations

import json

import anthropic
import openai
import pytest

from tests.conftest import assert_openai_error, new_key

MODEL = "gpt-4o-mini"
CLAUDE = "claude-opus-4-8"

# An assistant turn as clients replay it: an output message without `id` or `status`.
REPLAYED = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Paris is the capital.", "annotations": []}]}
NO_ANNOTATIONS = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Paris is the capital."}]}
IMAGE_NO_DETAIL = {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                               {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}


def test_responses_accept_replayed_assistant_messages(client):
    response = client.responses.create(model=MODEL, input=[
        {"role": "user", "content": "What is the capital of France?"}, REPLAYED, NO_ANNOTATIONS,
        {"role": "user", "content": "And of Spain?"},
    ])
    assert response.status == "completed" and response.output_text


def test_responses_accept_input_image_without_detail(client):
    response = client.responses.create(model=MODEL, input=[IMAGE_NO_DETAIL])
    assert response.status == "completed"


def test_responses_accept_function_tools_without_strict_or_parameters(client):
    """A tool that takes no arguments, as the Agents SDK and LangChain write it (app/core/leniency.py)."""
    tools = [{"type": "function", "name": "current_time", "description": "The time now."}]
    response = client.responses.create(model=MODEL, input="Call current_time.", tools=tools, tool_choice="required")
    call = next(item for item in response.output if item.type == "function_call")
    assert call.name == "current_time"
    assert client.responses.input_tokens.count(model=MODEL, input="What time is it?", tools=tools).input_tokens > 0


def test_conversation_items_accept_replayed_assistant_messages(client):
    conversation = client.conversations.create()
    added = client.conversations.items.create(conversation.id, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}, REPLAYED, NO_ANNOTATIONS, IMAGE_NO_DETAIL,
    ])
    assert len(added.data) == 4
    assert added.data[1].id.startswith("msg_") and added.data[1].status == "completed"
    assert added.data[2].content[0].annotations == []
    assert added.data[3].content[1].detail == "auto"


def test_replayed_items_still_checked(client, http):
    bad = {"type": "message", "role": "assistant", "content": [{"type": "output_text"}]}
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input=[bad])
    assert error.value.body["param"] == "input[0].content[0].text"
    response = http.post("/responses", json={"model": MODEL, "input": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": 5}]}]})
    error = assert_openai_error(response, 400, param="input[0].content[0].text", code="invalid_type")
    assert "expected a string" in error["message"]


def test_embeddings_accept_token_arrays(client):
    result = client.embeddings.create(model="text-embedding-3-small", input=[[15339, 1917], [9906]])
    assert len(result.data) == 2 and result.data[0].embedding
    assert len(client.embeddings.create(model="text-embedding-3-small", input=[15339, 1917]).data) == 1


def test_completions_accept_token_arrays(client):
    result = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=[[15339, 1917]], max_tokens=5)
    assert result.choices and isinstance(result.choices[0].text, str)


def test_union_errors_name_the_deepest_field(http):
    response = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": [[15339, "x"]]})
    error = assert_openai_error(response, 400, param="input[0][1]", code="invalid_type")
    assert error["message"] == "Invalid type for 'input[0][1]': expected an integer, but got a string instead."
    response = http.post("/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": [[15339, 1.5]]})
    assert_openai_error(response, 400, param="prompt[0][1]", code="invalid_type")
    response = http.post("/embeddings", json={"model": "text-embedding-3-small", "input": 5})
    assert_openai_error(response, 400, param="input", code="invalid_type")


@pytest.fixture
def claude(server) -> anthropic.Anthropic:
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as sdk:
        yield sdk


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


def test_anthropic_structured_outputs_beta_output_format(claude):
    message = claude.messages.create(
        model=CLAUDE, max_tokens=200, messages=[{"role": "user", "content": "The largest city in Japan?"}],
        extra_headers={"anthropic-beta": "structured-outputs-2025-11-13"},
        extra_body={"output_format": {"type": "json_schema", "schema": SCHEMA}},
    )
    answer = json.loads(message.content[0].text)
    assert set(answer) == {"city", "population"} and isinstance(answer["city"], str) and isinstance(answer["population"], int)


def test_anthropic_unknown_field_refused(claude):
    with pytest.raises(anthropic.BadRequestError) as error:
        claude.messages.create(model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi"}], extra_body={"frobnicate": True})
    body = error.value.body
    assert body["type"] == "error" and body["error"] == {"type": "invalid_request_error", "message": "frobnicate: Extra inputs are not permitted"}
    # every field Anthropic takes still passes
    claude.messages.create(model=CLAUDE, max_tokens=20, messages=[{"role": "user", "content": "hi"}], metadata={"user_id": "u"},
                           extra_body={"temperature": 0.5, "top_k": 5, "top_p": 0.9, "service_tier": "auto", "context_management": {"edits": []}})


def test_union_errors_blame_the_type_when_no_branch_takes_it(http):
    response = http.post("/responses", json={"model": MODEL, "input": [{"type": "bogus"}]})
    error = assert_openai_error(response, 400, param="input[0].type", code="invalid_value")
    assert "'function_call_output'" in error["message"]
    response = http.post("/responses", json={"model": MODEL, "input": [{"role": "user", "content": [{"type": "bogus", "text": "x"}]}]})
    assert_openai_error(response, 400, param="input[0].content[0].type", code="invalid_value")
    response = http.post("/responses", json={"model": MODEL, "input": [{"type": "function_call_output", "call_id": "c"}]})
    assert_openai_error(response, 400, param="input[0].output", code="missing_required_parameter")
    response = http.post("/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": [{"type": "bogus"}]}]})
    assert_openai_error(response, 400, param="messages[0].content[0].type", code="invalid_value")


def test_anthropic_output_format_streamed_and_counted(claude):
    beta = {"extra_headers": {"anthropic-beta": "structured-outputs-2025-11-13"},
            "extra_body": {"output_format": {"type": "json_schema", "schema": SCHEMA}}}
    with claude.messages.stream(model=CLAUDE, max_tokens=200, messages=[{"role": "user", "content": "Largest city?"}], **beta) as stream:
        text = "".join(stream.text_stream)
    assert set(json.loads(text)) == {"city", "population"}
    assert claude.messages.count_tokens(model=CLAUDE, messages=[{"role": "user", "content": "Largest city?"}], **beta).input_tokens > 0


def test_conversation_items_still_checked(client):
    conversation = client.conversations.create()
    with pytest.raises(openai.BadRequestError) as error:
        client.conversations.items.create(conversation.id, items=[{"type": "message", "role": "assistant", "content": [{"type": "output_text"}]}])
    assert error.value.body["param"] == "items[0].content[0].text"
    with pytest.raises(openai.BadRequestError) as error:
        client.conversations.items.create(conversation.id, items=[{"role": "user", "content": [{"type": "input_image", "detail": "bogus"}]}])
    assert error.value.body["param"] == "items[0].content[0].detail"
