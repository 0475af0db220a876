"""Threads and their messages through the official SDK: create with messages and tool resources, update,
delete (taking messages, runs and steps with it), message content parts and attachments (file_search
files land in the thread's own vector store), list pagination and the run filter, no messages while a
run is active, validation errors and tenancy. Raw bodies are checked against the OpenAPI spec."""
from __future__ import annotations

import os
import sqlite3

import openai
import pytest

from tests.conftest import assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c6360000002000100" "e221bc330000000049454e44ae426082")


@pytest.fixture
def document(client):
    return client.files.create(file=("notes.txt", b"The orchard grows heirloom apples in the valley."), purpose="assistants")


def test_thread_lifecycle_and_schema(client, http):
    thread = client.beta.threads.create(metadata={"user": "ada"})
    assert thread.id.startswith("thread_") and thread.object == "thread" and thread.metadata == {"user": "ada"}
    raw = http.get(f"/threads/{thread.id}").json()
    assert_matches_schema(raw, "ThreadObject")
    assert raw["tool_resources"] == {}
    updated = client.beta.threads.update(thread.id, metadata={"user": "grace"})
    assert updated.metadata == {"user": "grace"} and client.beta.threads.retrieve(thread.id).metadata == {"user": "grace"}
    body = client.beta.threads.with_raw_response.delete(thread.id).http_response.json()
    assert_matches_schema(body, "DeleteThreadResponse")
    assert body == {"id": thread.id, "object": "thread.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.threads.retrieve(thread.id)
    assert missing.value.body["message"] == f"No thread found with id '{thread.id}'."


def test_messages_crud_and_schema(client, http):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."}])
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [(m.role, m.content[0].text.value) for m in listed] == [("user", "Hello"), ("assistant", "Hi there.")]
    message = client.beta.threads.messages.create(thread.id, role="user", content="How are you?", metadata={"n": "3"})
    raw = http.get(f"/threads/{thread.id}/messages/{message.id}").json()
    assert_matches_schema(raw, "MessageObject")
    assert raw == {
        "id": message.id, "object": "thread.message", "created_at": message.created_at, "assistant_id": None, "thread_id": thread.id,
        "run_id": None, "role": "user", "content": [{"type": "text", "text": {"value": "How are you?", "annotations": []}}],
        "attachments": [], "metadata": {"n": "3"}, "status": "completed", "completed_at": message.created_at,
        "incomplete_at": None, "incomplete_details": None,
    }
    assert client.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"n": "4"}).metadata == {"n": "4"}
    assert client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).metadata == {"n": "4"}
    deleted = client.beta.threads.messages.with_raw_response.delete(message.id, thread_id=thread.id).http_response.json()
    assert_matches_schema(deleted, "DeleteMessageResponse")
    assert deleted == {"id": message.id, "object": "thread.message.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError) as missing:
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert missing.value.body["message"] == f"No message found with id '{message.id}'."
    # A message is only found through its own thread.
    other_thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(listed[0].id, thread_id=other_thread.id)


def test_message_list_pagination_and_run_filter(client, http):
    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(5)]
    page = client.beta.threads.messages.list(thread.id, limit=2)
    assert [m.id for m in page.data] == [ids[4], ids[3]] and page.has_more
    raw = http.get(f"/threads/{thread.id}/messages", params={"limit": 2, "order": "asc"}).json()
    assert_matches_schema(raw, "ListMessagesResponse")
    assert [m["id"] for m in raw["data"]] == ids[:2] and raw["has_more"] and (raw["first_id"], raw["last_id"]) == (ids[0], ids[1])
    assert [m.id for m in client.beta.threads.messages.list(thread.id, order="asc", after=ids[1], limit=2).data] == ids[2:4]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, before=ids[2]).data] == [ids[4], ids[3]]
    assert [m.id for m in client.beta.threads.messages.list(thread.id, limit=2)] == ids[::-1]
    assert client.beta.threads.messages.list(thread.id, run_id="run_none").data == []
    assert_openai_error(http.get(f"/threads/{thread.id}/messages", params={"limit": 101}), 400, param="limit")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list("thread_nope")


def test_content_parts_and_images(client, http):
    image = client.files.create(file=("dot.png", PNG), purpose="vision")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content=[
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ])
    raw = http.get(f"/threads/{thread.id}/messages/{message.id}").json()
    assert_matches_schema(raw, "MessageObject")
    assert raw["content"] == [
        {"type": "text", "text": {"value": "What is in these pictures?", "annotations": []}},
        {"type": "image_file", "image_file": {"file_id": image.id, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "auto"}},
    ]

    def error(body: dict, status: int = 400, **expected) -> dict:
        return assert_openai_error(http.post(f"/threads/{thread.id}/messages", json={"role": "user", **body}), status, **expected)

    error({"content": [{"type": "image_file", "image_file": {"file_id": "file-nope"}}]}, 404, param="content[0].image_file.file_id")
    error({"content": [{"type": "video", "video": {}}]}, param="content[0].type", code="invalid_value")
    error({"content": [{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]}, param="content[0].image_url.url")
    error({"content": ""}, param="content")
    error({"content": []}, param="content")
    error({"content": 5}, param="content", code="invalid_type")
    error({"role": "system", "content": "x"}, param="role", code="invalid_value")
    error({}, param="content", code="missing_required_parameter")
    error({"content": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, param="metadata", code="object_above_max_properties")
    error({"content": "x", "attachments": [{"file_id": "file-nope", "tools": [{"type": "file_search"}]}]}, 404, param="attachments[0].file_id")
    error({"content": "x", "attachments": [{"file_id": image.id, "tools": [{"type": "web"}]}]}, param="attachments[0].tools[0].type")
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [message.id]


def test_attachments_create_the_threads_vector_store(client, document):
    second = client.files.create(file=("more.txt", b"Kayaks must be returned to the boathouse by sunset."), purpose="assistants")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="user", content="Read this.", attachments=[
        {"file_id": document.id, "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]},
    ])
    assert message.attachments[0].file_id == document.id and [t.type for t in message.attachments[0].tools] == ["file_search", "code_interpreter"]
    [store_id] = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.expires_after.days == 7 and store.expires_after.anchor == "last_active_at"
    # The next file_search attachment joins the same store; a code_interpreter one stays on its message.
    client.beta.threads.messages.create(thread.id, role="user", content="And this.", attachments=[{"file_id": second.id, "tools": [{"type": "file_search"}]}])
    code_only = client.beta.threads.messages.create(thread.id, role="user", content="Run it.", attachments=[{"file_id": second.id, "tools": [{"type": "code_interpreter"}]}])
    assert code_only.attachments[0].tools[0].type == "code_interpreter"
    assert client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids == [store_id]
    assert {f.id for f in client.vector_stores.files.list(store_id)} == {document.id, second.id}

    # Creating a thread with such messages makes its store too; code_interpreter-only attachments make none.
    made = client.beta.threads.create(messages=[{"role": "user", "content": "x", "attachments": [{"file_id": second.id, "tools": [{"type": "file_search"}]}]}])
    [made_store] = made.tool_resources.file_search.vector_store_ids
    assert made_store != store_id and [f.id for f in client.vector_stores.files.list(made_store)] == [second.id]
    plain = client.beta.threads.create(messages=[{"role": "user", "content": "x", "attachments": [{"file_id": second.id, "tools": [{"type": "code_interpreter"}]}]}])
    assert plain.tool_resources.file_search is None

    # A thread that has a store already gets the files there.
    own = client.vector_stores.create()
    given = client.beta.threads.create(tool_resources={"file_search": {"vector_store_ids": [own.id]}})
    client.beta.threads.messages.create(given.id, role="user", content="x", attachments=[{"file_id": document.id, "tools": [{"type": "file_search"}]}])
    assert [f.id for f in client.vector_stores.files.list(own.id)] == [document.id]
    assert client.beta.threads.retrieve(given.id).tool_resources.file_search.vector_store_ids == [own.id]


def test_thread_tool_resources(client, http, document):
    thread = client.beta.threads.create(tool_resources={
        "code_interpreter": {"file_ids": [document.id]},
        "file_search": {"vector_stores": [{"file_ids": [document.id], "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}}]},
    })
    assert thread.tool_resources.code_interpreter.file_ids == [document.id]
    [store_id] = thread.tool_resources.file_search.vector_store_ids
    store = client.vector_stores.retrieve(store_id)
    assert store.file_counts.total == 1 and store.expires_after.days == 7  # thread helpers' stores expire when idle
    assert client.vector_stores.files.retrieve(document.id, vector_store_id=store_id).chunking_strategy.static.max_chunk_size_tokens == 200
    assert_matches_schema(http.get(f"/threads/{thread.id}").json(), "ThreadObject")

    other = client.vector_stores.create()
    updated = client.beta.threads.update(thread.id, tool_resources={"file_search": {"vector_store_ids": [other.id]}})
    assert updated.tool_resources.file_search.vector_store_ids == [other.id]
    assert updated.tool_resources.code_interpreter.file_ids == [document.id]

    def error(body: dict, status: int = 400, **expected) -> dict:
        return assert_openai_error(http.post("/threads", json=body), status, **expected)

    error({"tool_resources": {"file_search": {"vector_store_ids": [other.id, store_id]}}}, param="tool_resources.file_search.vector_store_ids")
    error({"tool_resources": {"file_search": {"vector_store_ids": ["vs_nope"]}}}, 404, param="tool_resources.file_search.vector_store_ids[0]")
    error({"tool_resources": {"code_interpreter": {"file_ids": ["file-nope"]}}}, 404, param="tool_resources.code_interpreter.file_ids[0]")
    error({"metadata": {f"k{i}": "v" for i in range(17)}}, param="metadata", code="object_above_max_properties")
    error({"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": "audio"}]}]}, param="messages[1].content[0].type")
    error({"messages": [{"role": "user", "content": "ok", "metadata": {f"k{i}": "v" for i in range(17)}}]}, param="messages[0].metadata")
    error({"messages": [{"role": "user", "content": "x", "attachments": [{"file_id": "file-nope"}]}]}, 404, param="messages[0].attachments[0].file_id")
    assert_openai_error(http.post(f"/threads/{thread.id}", json={"metadata": {f"k{i}": "v" for i in range(17)}}), 400, param="metadata")
    assert_openai_error(http.post(f"/threads/{thread.id}", json={"messages": []}), 400, param="messages", code="unknown_parameter")


def test_active_run_blocks_messages_and_delete_removes_everything(client, server):
    assistant = client.beta.assistants.create(model=MODEL, tools=[{
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Use get_weather for Paris please."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as blocked:
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    assert blocked.value.body["message"] == f"Can't add messages to {thread.id} while a run {run.id} is active."
    assert blocked.value.body["param"] is None
    assert client.beta.threads.messages.list(thread.id, run_id=run.id).data == []  # the run has written no message yet

    client.beta.threads.delete(thread.id)
    if not os.environ.get("UNDERSTUDY_DATABASE_URL") and not os.environ.get("UNDERSTUDY_TEST_TEAM"):  # SQLite: no rows are left behind
        with sqlite3.connect(server.data_dir / "understudy.db") as db:
            for table in ("thread_messages", "runs", "run_steps", "threads"):
                column = "id" if table == "threads" else "thread_id"
                assert db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?", (thread.id,)).fetchone()[0] == 0, table
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)


def test_tenancy(client, server):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "mine"}])
    message = client.beta.threads.messages.list(thread.id).data[0]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        for call in (
            lambda: other.beta.threads.retrieve(thread.id),
            lambda: other.beta.threads.update(thread.id, metadata={"x": "y"}),
            lambda: other.beta.threads.delete(thread.id),
            lambda: other.beta.threads.messages.list(thread.id),
            lambda: other.beta.threads.messages.create(thread.id, role="user", content="theirs"),
            lambda: other.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
            lambda: other.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"x": "y"}),
            lambda: other.beta.threads.messages.delete(message.id, thread_id=thread.id),
        ):
            with pytest.raises(openai.NotFoundError):
                call()
    assert [m.id for m in client.beta.threads.messages.list(thread.id)] == [message.id]
    assert client.beta.threads.retrieve(thread.id).metadata == {}
