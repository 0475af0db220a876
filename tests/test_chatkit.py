"""ChatKit through the official SDK (`client.beta.chatkit`): sessions (client secret, expiry, workflow,
user, cancel), threads recorded for a session through Understudy's endpoint, listed with their items,
paginated, deleted; tenancy and bad input."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema


def _record(server, api_key, session_id: str, messages: list[dict], title: str | None = None) -> dict:
    response = httpx.post(f"{server.url}/_understudy/v1/chatkit/threads", json={"session_id": session_id, "title": title, "messages": messages},
                          headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_session_lifecycle(client, server, api_key):
    chatkit = client.beta.chatkit
    session = chatkit.sessions.create(user="user-1", workflow={"id": "wf_123", "state_variables": {"tier": "gold"}},
                                      expires_after={"anchor": "created_at", "seconds": 120}, rate_limits={"max_requests_per_1_minute": 30})
    assert session.id.startswith("cksess_") and session.client_secret.startswith("ek_") and session.status == "active"
    assert session.workflow.id == "wf_123" and session.workflow.state_variables == {"tier": "gold"} and session.user == "user-1"
    assert session.max_requests_per_1_minute == 30 and session.expires_at - time.time() <= 120
    raw = httpx.post(f"{server.url}/v1/chatkit/sessions", json={"user": "u", "workflow": {"id": "wf_1"}},
                     headers={"Authorization": f"Bearer {api_key}", "OpenAI-Beta": "chatkit_beta=v1"}).json()
    assert_matches_schema(raw, "ChatSessionResource")
    assert raw["expires_at"] - time.time() > 590 and raw["chatkit_configuration"]["history"]["enabled"] is True
    cancelled = httpx.post(f"{server.url}/v1/chatkit/sessions/{raw['id']}/cancel", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert_matches_schema(cancelled, "ChatSessionResource")
    assert cancelled["status"] == "cancelled" and cancelled["client_secret"] == raw["client_secret"]
    assert chatkit.sessions.cancel(raw["id"]).status == "cancelled"  # again: as it is
    assert chatkit.sessions.cancel(session.id).status == "cancelled"
    short = chatkit.sessions.create(user="u", workflow={"id": "wf_1"}, expires_after={"anchor": "created_at", "seconds": 1})
    time.sleep(1.1)
    assert chatkit.sessions.cancel(short.id).status == "expired"
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.beta.chatkit.sessions.cancel(session.id)


def test_threads_and_items(client, server, api_key):
    chatkit = client.beta.chatkit
    alice = chatkit.sessions.create(user="alice", workflow={"id": "wf_1"})
    bob = chatkit.sessions.create(user="bob", workflow={"id": "wf_1"})
    first = _record(server, api_key, alice.id, [{"role": "user", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}], title="Greeting")
    second = _record(server, api_key, alice.id, [])
    third = _record(server, api_key, bob.id, [{"role": "user", "text": "Yo"}])
    assert first["id"].startswith("cthr_") and first["user"] == "alice" and first["title"] == "Greeting"
    raw = httpx.get(f"{server.url}/v1/chatkit/threads", headers={"Authorization": f"Bearer {api_key}"}).json()
    assert_matches_schema(raw, "ThreadListResource")
    assert [t["id"] for t in raw["data"]] == [third["id"], second["id"], first["id"]]
    assert [t.id for t in chatkit.threads.list(user="alice")] == [second["id"], first["id"]]
    page = chatkit.threads.list(limit=2, order="asc")
    assert [t.id for t in page.data] == [first["id"], second["id"]] and page.has_more
    assert [t.id for t in chatkit.threads.list(limit=2, order="asc", after=second["id"]).data] == [third["id"]]
    assert [t.id for t in chatkit.threads.list(order="asc", before=third["id"]).data] == [first["id"], second["id"]]
    none = chatkit.threads.list(limit=0)  # the spec's minimum
    assert none.data == [] and none.has_more
    got = chatkit.threads.retrieve(first["id"])
    assert got.status.type == "active" and got.title == "Greeting"
    assert_matches_schema(httpx.get(f"{server.url}/v1/chatkit/threads/{first['id']}", headers={"Authorization": f"Bearer {api_key}"}).json(),
                          "ThreadResource")
    items = httpx.get(f"{server.url}/v1/chatkit/threads/{first['id']}/items", params={"order": "asc"},
                      headers={"Authorization": f"Bearer {api_key}"}).json()
    assert_matches_schema(items, "ThreadItemListResource")
    assert [i["type"] for i in items["data"]] == ["chatkit.user_message", "chatkit.assistant_message"]
    sdk_items = chatkit.threads.list_items(first["id"], order="asc", limit=1)
    assert sdk_items.data[0].id.startswith("cthi_") and sdk_items.has_more and sdk_items.data[0].content[0].text == "Hi"
    deleted = chatkit.threads.delete(first["id"])
    assert (deleted.id, deleted.object, deleted.deleted) == (first["id"], "chatkit.thread.deleted", True)
    with pytest.raises(openai.NotFoundError):
        chatkit.threads.retrieve(first["id"])
    with pytest.raises(openai.NotFoundError):
        chatkit.threads.list_items(first["id"])
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        assert other.beta.chatkit.threads.list().data == []
        with pytest.raises(openai.NotFoundError):
            other.beta.chatkit.threads.retrieve(third["id"])
        with pytest.raises(openai.NotFoundError):
            other.beta.chatkit.threads.delete(third["id"])
    chatkit.sessions.cancel(bob.id)  # a cancelled session records nothing more
    response = httpx.post(f"{server.url}/_understudy/v1/chatkit/threads", json={"session_id": bob.id}, headers={"Authorization": f"Bearer {api_key}"})
    assert_openai_error(response, 400, param="session_id")


def test_bad_input(server, api_key):
    url, headers = f"{server.url}/v1/chatkit/sessions", {"Authorization": f"Bearer {api_key}"}
    wf = {"id": "wf_1"}
    assert_openai_error(httpx.post(url, json={"user": "u"}, headers=headers), 400, param="workflow")
    assert_openai_error(httpx.post(url, json={"workflow": wf}, headers=headers), 400, param="user")
    assert_openai_error(httpx.post(url, json={"user": "", "workflow": wf}, headers=headers), 400, param="user")
    assert_openai_error(httpx.post(url, json={"user": "u", "workflow": {}}, headers=headers), 400, param="workflow.id")
    assert_openai_error(httpx.post(url, json={"user": "u", "workflow": wf, "expires_after": {"anchor": "created_at", "seconds": 601}},
                                   headers=headers), 400, param="expires_after.seconds")
    assert_openai_error(httpx.post(url, json={"user": "u", "workflow": wf, "rate_limits": {"max_requests_per_1_minute": 0}},
                                   headers=headers), 400, param="rate_limits.max_requests_per_1_minute")
    assert_openai_error(httpx.post(url, json={"user": "u", "workflow": wf, "bogus": 1}, headers=headers), 400, param="bogus")
    assert_openai_error(httpx.post(f"{url}/cksess_nope/cancel", headers=headers), 404)
    threads = f"{server.url}/v1/chatkit/threads"
    assert_openai_error(httpx.get(threads, params={"limit": 101}, headers=headers), 400, param="limit")
    assert_openai_error(httpx.get(threads, params={"order": "up"}, headers=headers), 400, param="order")
    assert_openai_error(httpx.get(f"{threads}/cthr_nope", headers=headers), 404)
    record = f"{server.url}/_understudy/v1/chatkit/threads"
    session = httpx.post(url, json={"user": "u", "workflow": wf}, headers=headers).json()
    assert_openai_error(httpx.post(record, json={"session_id": session["id"], "messages": [{"role": "system", "text": "x"}]},
                                   headers=headers), 400, param="messages[0]")
    assert_openai_error(httpx.post(record, json={"session_id": "cksess_nope"}, headers=headers), 404, param="session_id")
