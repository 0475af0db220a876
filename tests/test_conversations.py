"""Conversations and their items through the official SDK: create (with initial items), retrieve, update,
delete (taking the items with it); items added, listed (pagination, order), retrieved and deleted;
Responses input items stored in their output shapes (string content as parts, ids and statuses added,
function calls and their outputs); `include`; validation errors, 404s and tenancy. Raw bodies are checked
against the OpenAPI spec."""
from __future__ import annotations

import openai
import pytest

from app.core.errors import APIError
from app.services.conversations import ConversationsService
from storage.db import Database
from tests.conftest import assert_openai_error, new_key
from tests.test_db import pg_databases  # noqa: F401 (a fixture: fresh PostgreSQL databases)
from tests.support.openapi import assert_matches_schema


def test_conversation_lifecycle_and_schema(client, http):
    conversation = client.conversations.create(metadata={"topic": "demo"})
    assert conversation.id.startswith("conv_") and conversation.object == "conversation" and conversation.metadata == {"topic": "demo"}
    raw = http.get(f"/conversations/{conversation.id}").json()
    assert_matches_schema(raw, "ConversationResource")
    assert raw == {"id": conversation.id, "object": "conversation", "created_at": conversation.created_at, "metadata": {"topic": "demo"}}
    updated = client.conversations.update(conversation.id, metadata={"topic": "other", "n": "2"})
    assert updated.metadata == {"topic": "other", "n": "2"}
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "other", "n": "2"}
    body = client.conversations.with_raw_response.delete(conversation.id).http_response.json()
    assert_matches_schema(body, "DeletedConversationResource")
    assert body == {"id": conversation.id, "object": "conversation.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.retrieve(conversation.id)
    assert missing.value.body["message"] == f"Conversation with id '{conversation.id}' not found."
    assert client.conversations.create().metadata == {}


def test_initial_items_normalised(client, http):
    conversation = client.conversations.create(items=[
        {"role": "system", "content": "Be brief."},
        {"type": "message", "role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Parts"}, {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}]},
    ])
    raw = http.get(f"/conversations/{conversation.id}/items", params={"order": "asc"}).json()
    assert_matches_schema(raw, "ConversationItemList")
    items = raw["data"]
    assert all(item["id"].startswith("msg_") and item["type"] == "message" and item["status"] == "completed" for item in items)
    assert [(item["role"], item["content"]) for item in items] == [
        ("system", [{"type": "input_text", "text": "Be brief."}]),
        ("user", [{"type": "input_text", "text": "Hello"}]),
        ("assistant", [{"type": "output_text", "text": "Hi there.", "annotations": [], "logprobs": []}]),
        ("user", [{"type": "input_text", "text": "Parts"},
                  {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low", "file_id": None}]),
    ]
    assert (raw["first_id"], raw["last_id"], raw["has_more"]) == (items[0]["id"], items[-1]["id"], False)
    # The SDK parses them as its own item types.
    listed = client.conversations.items.list(conversation.id, order="asc").data
    assert [type(item).__name__ for item in listed] == ["Message"] * 4 and listed[2].content[0].text == "Hi there."


def test_items_create_retrieve_delete(client, http):
    conversation = client.conversations.create()
    created = client.conversations.items.with_raw_response.create(conversation.id, items=[
        {"type": "message", "role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
        {"type": "reasoning", "id": "rs_given", "summary": [{"type": "summary_text", "text": "Thinking."}]},
    ]).http_response.json()
    assert_matches_schema(created, "ConversationItemList")
    message, call, output, reasoning = created["data"]
    assert created["object"] == "list" and created["has_more"] is False
    assert (created["first_id"], created["last_id"]) == (message["id"], reasoning["id"])
    assert call == {"type": "function_call", "id": call["id"], "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}', "status": "completed"}
    assert call["id"].startswith("fc_")
    assert output == {"type": "function_call_output", "id": output["id"], "call_id": "call_1", "output": '{"temp": 21}', "status": "completed"}
    assert output["id"].startswith("fco_") and reasoning["id"] == "rs_given"  # a given id is kept
    for item in created["data"]:
        raw = http.get(f"/conversations/{conversation.id}/items/{item['id']}").json()
        assert_matches_schema(raw, "ConversationItem")
        assert raw == item
    sdk_call = client.conversations.items.retrieve(call["id"], conversation_id=conversation.id)
    assert sdk_call.type == "function_call" and sdk_call.name == "get_weather"
    # Deleting an item answers with the conversation.
    deleted = client.conversations.items.with_raw_response.delete(call["id"], conversation_id=conversation.id).http_response.json()
    assert_matches_schema(deleted, "ConversationResource")
    assert deleted == http.get(f"/conversations/{conversation.id}").json()
    with pytest.raises(openai.NotFoundError) as missing:
        client.conversations.items.retrieve(call["id"], conversation_id=conversation.id)
    assert missing.value.body["message"] == f"Item with id '{call['id']}' not found."
    assert [i.id for i in client.conversations.items.list(conversation.id, order="asc")] == [message["id"], output["id"], reasoning["id"]]
    # An item is only found through its own conversation.
    other = client.conversations.create()
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(message["id"], conversation_id=other.id)


def test_items_pagination_and_order(client, http):
    conversation = client.conversations.create(items=[{"role": "user", "content": f"m{i}"} for i in range(3)])
    more = client.conversations.items.create(conversation.id, items=[{"role": "user", "content": f"m{i}"} for i in range(3, 6)])
    assert [item.content[0].text for item in more.data] == ["m3", "m4", "m5"]
    ids = [item.id for item in client.conversations.items.list(conversation.id, order="asc", limit=100).data]
    assert len(ids) == 6
    page = client.conversations.items.list(conversation.id, limit=2)  # default order: newest first
    assert [i.id for i in page.data] == [ids[5], ids[4]] and page.has_more
    assert [i.id for i in client.conversations.items.list(conversation.id, order="asc", after=ids[1], limit=2).data] == ids[2:4]
    assert [i.id for i in client.conversations.items.list(conversation.id, limit=2)] == ids[::-1]  # auto-pagination
    assert [i.id for i in client.conversations.items.list(conversation.id, order="asc", limit=4)] == ids
    assert_openai_error(http.get(f"/conversations/{conversation.id}/items", params={"limit": 101}), 400, param="limit")
    assert_openai_error(http.get(f"/conversations/{conversation.id}/items", params={"limit": 0}), 400, param="limit")
    assert_openai_error(http.get(f"/conversations/{conversation.id}/items", params={"order": "up"}), 400, param="order")


def test_include(client, http):
    results = [{"file_id": "file-1", "filename": "a.txt", "score": 0.5, "text": "apples"}]
    conversation = client.conversations.create(items=[
        {"type": "file_search_call", "id": "fs_given", "queries": ["apples"], "status": "completed", "results": results},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
    ])
    plain = client.conversations.items.list(conversation.id, order="asc").data
    assert plain[0].id == "fs_given" and plain[0].results is None and plain[1].encrypted_content is None
    included = client.conversations.items.list(conversation.id, order="asc", include=["file_search_call.results", "reasoning.encrypted_content"]).data
    assert included[0].results[0].text == "apples" and included[1].encrypted_content == "opaque"
    one = client.conversations.items.retrieve("fs_given", conversation_id=conversation.id, include=["file_search_call.results"])
    assert one.results[0].file_id == "file-1"
    assert_openai_error(http.get(f"/conversations/{conversation.id}/items", params={"include[]": "nope"}), 400, param="include[0]")


def test_item_reference_and_duplicate_ids(client):
    first = client.conversations.create(items=[{"role": "user", "content": "Remember me."}])
    original = client.conversations.items.list(first.id).data[0]
    second = client.conversations.create(items=[{"type": "item_reference", "id": original.id}])
    [copied] = client.conversations.items.list(second.id).data
    assert copied.id == original.id and copied.content[0].text == "Remember me."
    third = client.conversations.create(items=[{"id": original.id}])  # `type` is optional on a reference
    assert [i.id for i in client.conversations.items.list(third.id)] == [original.id]
    with pytest.raises(openai.BadRequestError) as duplicate:
        client.conversations.items.create(second.id, items=[{"type": "item_reference", "id": original.id}])
    assert duplicate.value.body["code"] == "duplicate_item_id"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.conversations.items.create(second.id, items=[{"type": "item_reference", "id": "msg_unknown"}])
    assert unknown.value.body["param"] == "items[0].id"


def test_validation_errors(client, http):
    too_many = {f"k{i}": "v" for i in range(17)}
    assert_openai_error(http.post("/conversations", json={"metadata": too_many}), 400, param="metadata", code="object_above_max_properties")
    conversation = client.conversations.create()
    assert_openai_error(http.post(f"/conversations/{conversation.id}", json={"metadata": too_many}), 400, param="metadata")
    assert_openai_error(http.post(f"/conversations/{conversation.id}", json={}), 400, param="metadata", code="missing_required_parameter")
    twenty_one = [{"role": "user", "content": "x"}] * 21
    assert_openai_error(http.post("/conversations", json={"items": twenty_one}), 400, param="items", code="array_above_max_length")
    assert_openai_error(http.post(f"/conversations/{conversation.id}/items", json={"items": twenty_one}), 400, param="items", code="array_above_max_length")
    assert_openai_error(http.post(f"/conversations/{conversation.id}/items", json={}), 400, param="items", code="missing_required_parameter")
    assert_openai_error(http.post("/conversations", json={"items": [{"role": "robot", "content": "x"}]}), 400, param="items[0].role")
    assert_openai_error(http.post("/conversations", json={"items": [{"type": "teleport"}]}), 400, param="items[0].type", code="invalid_value")
    bad_part = {"items": [{"role": "user", "content": [{"type": "input_text"}]}]}
    assert_openai_error(http.post("/conversations", json=bad_part), 400, param="items[0].content[0].text", code="missing_required_parameter")
    assert_openai_error(http.post("/conversations", json={"items": "hello"}), 400, param="items", code="invalid_type")
    call = {"type": "function_call", "call_id": "c", "name": "f"}
    assert_openai_error(http.post("/conversations", json={"items": [call]}), 400, param="items[0].arguments", code="missing_required_parameter")
    reasoning = {"type": "reasoning", "summary": []}  # the SDK's input type requires a reasoning item's id
    assert_openai_error(http.post(f"/conversations/{conversation.id}/items", json={"items": [reasoning]}), 400, param="items[0].id")
    assert_openai_error(http.post(f"/conversations/{conversation.id}/items", json={"items": [{"type": "compaction_trigger"}]}), 400, param="items[0].type")
    assert_openai_error(http.post("/conversations", json={"colour": "red"}), 400, param="colour", code="unknown_parameter")
    assert_openai_error(http.post("/conversations", content=b"{nope"), 400)
    # Nothing was stored by the failed creates.
    assert client.conversations.items.list(conversation.id).data == []


def test_not_found_and_tenancy(client, server, http):
    conversation = client.conversations.create(items=[{"role": "user", "content": "mine"}])
    item_id = client.conversations.items.list(conversation.id).data[0].id
    for response in (
        http.get("/conversations/conv_missing"), http.post("/conversations/conv_missing", json={"metadata": {}}),
        http.delete("/conversations/conv_missing"), http.get("/conversations/conv_missing/items"),
        http.post("/conversations/conv_missing/items", json={"items": []}), http.get(f"/conversations/conv_missing/items/{item_id}"),
        http.delete(f"/conversations/{conversation.id}/items/msg_missing"),
    ):
        assert_openai_error(response, 404)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        for call in (
            lambda: other.conversations.retrieve(conversation.id),
            lambda: other.conversations.update(conversation.id, metadata={"x": "y"}),
            lambda: other.conversations.delete(conversation.id),
            lambda: other.conversations.items.list(conversation.id),
            lambda: other.conversations.items.create(conversation.id, items=[{"role": "user", "content": "theirs"}]),
            lambda: other.conversations.items.retrieve(item_id, conversation_id=conversation.id),
            lambda: other.conversations.items.delete(item_id, conversation_id=conversation.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
    assert client.conversations.retrieve(conversation.id).metadata == {}
    assert [i.id for i in client.conversations.items.list(conversation.id)] == [item_id]


def test_delete_removes_items(client, http):
    conversation = client.conversations.create(items=[{"role": "user", "content": "gone soon"}])
    client.conversations.delete(conversation.id)
    assert_openai_error(http.get(f"/conversations/{conversation.id}/items"), 404)
    with pytest.raises(openai.NotFoundError):
        client.conversations.delete(conversation.id)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    return request.getfixturevalue("pg_databases")()


@pytest.mark.anyio
async def test_engine_interface(db_url):
    """What the Responses engine calls, in process: `get`, `items_for_context` (oldest first, full items)
    and `append` (input and output shapes normalised, stored in order), each scoped by tenant."""
    db = Database(db_url)
    await db.migrate()
    try:
        service = ConversationsService(db)
        conversation = await service.create("tenant-a", {"items": [{"role": "developer", "content": "Be brief."}]})
        assert await service.get("tenant-a", conversation["id"]) == conversation
        output = {"id": "msg_out", "type": "message", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": "Sunny.", "annotations": [], "logprobs": []}]}
        search = {"id": "fs_1", "type": "file_search_call", "status": "completed", "queries": ["q"], "results": [{"file_id": "file-1"}]}
        appended = await service.append("tenant-a", conversation["id"], [{"role": "user", "content": "Weather?"}, search, output])
        assert appended[0]["content"] == [{"type": "input_text", "text": "Weather?"}] and appended[0]["id"].startswith("msg_")
        assert appended[1:] == [search, output]
        context = await service.items_for_context("tenant-a", conversation["id"])
        assert [item["id"] for item in context[1:]] == [item["id"] for item in appended] and context[0]["role"] == "developer"
        assert context[2]["results"] == [{"file_id": "file-1"}]  # full items: no `include` filtering
        for call in (service.get, service.items_for_context):
            with pytest.raises(APIError) as missing:
                await call("tenant-b", conversation["id"])
            assert missing.value.status_code == 404
        with pytest.raises(APIError):
            await service.append("tenant-b", conversation["id"], [{"role": "user", "content": "x"}])
        assert len(await service.items_for_context("tenant-a", conversation["id"])) == 4
        # A client adding an item whose id the conversation holds is refused, and nothing of the batch is written.
        with pytest.raises(APIError) as duplicate:
            await service.add_items("tenant-a", conversation["id"], [{"role": "user", "content": "new"}, output])
        assert duplicate.value.code == "duplicate_item_id" and len(await service.items_for_context("tenant-a", conversation["id"])) == 4
        # Appending is idempotent by id (a background response re-run after a restart).
        again = await service.append("tenant-a", conversation["id"], [output, {"role": "user", "content": "More?"}])
        assert again[0] == output and [i["id"] for i in await service.items_for_context("tenant-a", conversation["id"])][-2:] == ["msg_out", again[1]["id"]]
    finally:
        await db.dispose()
