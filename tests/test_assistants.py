"""Assistants through the official SDK: the object and its defaults, update and delete, list pagination,
tool_resources (existing and inline vector stores, code_interpreter files), validation with OpenAI's
errors, and tenancy. Raw bodies are checked against the OpenAPI spec."""
from __future__ import annotations

import openai
import pytest

from tests.conftest import assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def document(client):
    return client.files.create(file=("notes.txt", b"The lighthouse keeper logs the fog horn every evening."), purpose="assistants")


def test_create_defaults_and_schema(client, http):
    assistant = client.beta.assistants.create(model=MODEL)
    assert assistant.id.startswith("asst_") and assistant.object == "assistant" and assistant.model == MODEL
    assert (assistant.name, assistant.description, assistant.instructions) == (None, None, None)
    assert assistant.tools == [] and assistant.metadata == {}
    assert (assistant.temperature, assistant.top_p, assistant.response_format) == (1.0, 1.0, "auto")
    raw = http.get(f"/assistants/{assistant.id}", headers={"OpenAI-Beta": "assistants=v2"}).json()
    assert_matches_schema(raw, "AssistantObject")
    assert raw["tool_resources"] == {} and "reasoning_effort" not in raw


def test_full_object_update_and_delete(client, http):
    created = client.beta.assistants.create(
        model=MODEL, name="Math Tutor", description="Helps with sums.", instructions="Be brief.",
        tools=[WEATHER, {"type": "code_interpreter"}, {"type": "file_search", "file_search": {"max_num_results": 5}}],
        metadata={"team": "maths"}, temperature=0.2, top_p=0.9, response_format={"type": "json_object"}, reasoning_effort="low",
    )
    raw = http.get(f"/assistants/{created.id}").json()
    assert_matches_schema(raw, "AssistantObject")
    assert raw["tools"] == [
        {"type": "function", "function": {**WEATHER["function"], "strict": False}},
        {"type": "code_interpreter"},
        {"type": "file_search", "file_search": {"max_num_results": 5}},
    ]
    assert (raw["temperature"], raw["top_p"], raw["response_format"], raw["reasoning_effort"]) == (0.2, 0.9, {"type": "json_object"}, "low")

    updated = client.beta.assistants.update(created.id, name="Renamed", tools=[], metadata={"team": "physics"})
    assert updated.name == "Renamed" and updated.tools == [] and updated.metadata == {"team": "physics"}
    assert updated.instructions == "Be brief." and updated.temperature == 0.2  # untouched fields stay
    assert client.beta.assistants.retrieve(created.id).name == "Renamed"

    raw = client.beta.assistants.with_raw_response.delete(created.id)
    assert raw.http_response.status_code == 200
    body = raw.http_response.json()
    assert_matches_schema(body, "DeleteAssistantResponse")
    assert body == {"id": created.id, "object": "assistant.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.assistants.retrieve(created.id)
    assert missing.value.body["message"] == f"No assistant found with id '{created.id}'."
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.delete(created.id)


def test_list_pagination_and_order(client, http):
    ids = [client.beta.assistants.create(model=MODEL, name=f"a{i}").id for i in range(5)]
    first = client.beta.assistants.list(limit=2)
    assert [a.id for a in first.data] == ids[::-1][:2] and first.has_more
    raw = http.get("/assistants", params={"limit": 2}).json()
    assert_matches_schema(raw, "ListAssistantsResponse")
    assert (raw["first_id"], raw["last_id"]) == (ids[4], ids[3])
    assert [a.id for a in client.beta.assistants.list()] == ids[::-1]
    assert [a.id for a in client.beta.assistants.list(order="asc", after=ids[1], limit=2).data] == ids[2:4]
    assert [a.id for a in client.beta.assistants.list(order="asc", before=ids[3]).data] == ids[:3]
    assert [a.id for a in client.beta.assistants.list(limit=2)] == ids[::-1]  # iterating follows `after` cursors
    assert_openai_error(http.get("/assistants", params={"limit": 0}), 400, param="limit")
    assert_openai_error(http.get("/assistants", params={"limit": 101}), 400, param="limit")
    assert_openai_error(http.get("/assistants", params={"order": "sideways"}), 400, param="order")


def test_tool_resources_existing_store_and_code_files(client, document):
    store = client.vector_stores.create(name="kb")
    assistant = client.beta.assistants.create(
        model=MODEL, tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}, "code_interpreter": {"file_ids": [document.id]}},
    )
    assert assistant.tool_resources.file_search.vector_store_ids == [store.id]
    assert assistant.tool_resources.code_interpreter.file_ids == [document.id]
    # An update replaces the resources it names and keeps the others.
    updated = client.beta.assistants.update(assistant.id, tool_resources={"code_interpreter": {"file_ids": []}})
    assert updated.tool_resources.code_interpreter.file_ids == []
    assert updated.tool_resources.file_search.vector_store_ids == [store.id]


def test_inline_vector_store_is_created(client, document):
    assistant = client.beta.assistants.create(
        model=MODEL, tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [document.id], "metadata": {"origin": "inline"}}]}},
    )
    [store_id] = assistant.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.metadata == {"origin": "inline"} and store.file_counts.total == 1 and store.expires_after is None
    assert [f.id for f in client.vector_stores.files.list(store_id)] == [document.id]


def test_validation_errors(client, http, document):
    def error(body: dict, status: int = 400, **expected) -> dict:
        return assert_openai_error(http.post("/assistants", json={"model": MODEL, **body}), status, **expected)

    bad_tool = error({"tools": [{"type": "retrieval"}]}, param="tools[0].type", code="invalid_value")
    assert bad_tool["message"] == "Invalid value: 'retrieval'. Supported values are: 'code_interpreter', 'file_search', and 'function'."
    error({"tools": [{"type": "function"}]}, param="tools[0].function", code="missing_required_parameter")
    error({"tools": [{"type": "function", "function": {"name": "has space"}}]}, param="tools[0].function.name")
    error({"tools": [{"type": "file_search", "file_search": {"max_num_results": 51}}]}, param="tools[0].file_search.max_num_results")
    error({"tools": [WEATHER] * 129}, param="tools", code="array_above_max_length")
    error({"name": "n" * 257}, param="name", code="string_above_max_length")
    error({"description": "d" * 513}, param="description", code="string_above_max_length")
    error({"instructions": "i" * 256_001}, param="instructions", code="string_above_max_length")
    error({"temperature": 2.5}, param="temperature", code="decimal_above_max_value")
    error({"top_p": -0.1}, param="top_p", code="decimal_below_min_value")
    error({"response_format": {"type": "yaml"}}, param="response_format.type", code="invalid_value")
    error({"metadata": {f"k{i}": "v" for i in range(17)}}, param="metadata", code="object_above_max_properties")
    error({"colour": "blue"}, param="colour", code="unknown_parameter")
    unknown_model = error({"model": "nonexistent-model"}, param="model", code="model_not_found")  # outside every model family
    assert "nonexistent-model" in unknown_model["message"]
    assert_openai_error(http.post("/assistants", json={}), 400, param="model", code="missing_required_parameter")

    store_a, store_b = client.vector_stores.create(), client.vector_stores.create()
    error({"tool_resources": {"file_search": {"vector_store_ids": [store_a.id, store_b.id]}}},
          param="tool_resources.file_search.vector_store_ids", code="array_above_max_length")
    error({"tool_resources": {"file_search": {"vector_stores": [{}, {}]}}}, param="tool_resources.file_search.vector_stores")
    error({"tool_resources": {"file_search": {"vector_store_ids": [store_a.id], "vector_stores": [{}]}}}, param="tool_resources.file_search")
    error({"tool_resources": {"code_interpreter": {"file_ids": [document.id] * 21}}},
          param="tool_resources.code_interpreter.file_ids", code="array_above_max_length")
    error({"tool_resources": {"file_search": {"vector_store_ids": ["vs_nope"]}}}, 404, param="tool_resources.file_search.vector_store_ids[0]")
    error({"tool_resources": {"code_interpreter": {"file_ids": ["file-nope"]}}}, 404, param="tool_resources.code_interpreter.file_ids[0]")
    error({"tool_resources": {"file_search": {"vector_stores": [{"file_ids": ["file-nope"]}]}}}, 404,
          param="tool_resources.file_search.vector_stores[0].file_ids[0]")
    # Nothing was created by the refused requests.
    assert client.beta.assistants.list().data == []
    assert {s.id for s in client.vector_stores.list()} == {store_a.id, store_b.id}

    assistant = client.beta.assistants.create(model=MODEL)
    assert_openai_error(http.post(f"/assistants/{assistant.id}", json={"name": "n" * 257}), 400, param="name")
    assert_openai_error(http.post(f"/assistants/{assistant.id}", json={"model": "nonexistent-model"}), 400, param="model")
    assert_openai_error(http.post(f"/assistants/{assistant.id}", json={"metadata": {f"k{i}": "v" for i in range(17)}}), 400, param="metadata")


def test_tenancy(client, server, document):
    assistant = client.beta.assistants.create(model=MODEL, name="mine")
    store = client.vector_stores.create()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        assert other.beta.assistants.list().data == []
        for call in (
            lambda: other.beta.assistants.retrieve(assistant.id),
            lambda: other.beta.assistants.update(assistant.id, name="theirs"),
            lambda: other.beta.assistants.delete(assistant.id),
            lambda: other.beta.assistants.create(model=MODEL, tool_resources={"file_search": {"vector_store_ids": [store.id]}}),
            lambda: other.beta.assistants.create(model=MODEL, tool_resources={"code_interpreter": {"file_ids": [document.id]}}),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
    assert client.beta.assistants.retrieve(assistant.id).name == "mine"
