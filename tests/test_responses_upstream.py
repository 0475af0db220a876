"""The Responses API against an upstream that speaks it (a provider with `responses = true`): relayed as it
is, our key instead of the client's, the upstream's answer and ids passed straight back; ids not stored
here are looked up there. A provider without `responses` is still translated to chat completions.
The upstream is the real fake upstream on loopback (tests/support/fake_upstream.py)."""
from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from app.inference.base import ProviderInfo
from app.inference.router import build_router
from app.settings import Settings
from tests.conftest import new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env
from tests.support.openapi import assert_matches_schema

KEY = "sk-upstream-fixed-key"  # the only key the fake accepts: the server must send it, not the client's
EVENTS = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
          *["response.output_text.delta"] * 5, "response.output_text.done", "response.content_part.done",
          "response.output_item.done", "response.completed"]


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(chunks=5, api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    providers = [{"name": "speaks", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY, "responses": True},
                 {"name": "chat-only", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY}]
    routes = [{"model": "gpt-*", "provider": "speaks"}, {"model": "local-*", "provider": "chat-only"}]
    env = upstream_env(providers, routes, UNDERSTUDY_EXTRA_MODELS="local-llama", UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
    srv = start_server(tmp_path_factory.mktemp("responses-upstream"), env)
    yield srv
    srv.stop()


@pytest.fixture
def fake(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def oa(server, key):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def raw(server, key):
    with httpx.Client(base_url=f"{server.url}/v1", headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
        yield client


def test_create_is_relayed_with_our_key_and_the_clients_body(oa, raw, fake, key):
    response = oa.responses.create(model="gpt-4.1", input="Hello", instructions="Be brief.", max_output_tokens=20, metadata={"k": "v"})
    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.json() == {"model": "gpt-4.1", "input": "Hello", "instructions": "Be brief.", "max_output_tokens": 20, "metadata": {"k": "v"}}
    assert sent.headers["authorization"] == f"Bearer {KEY}" and key not in json.dumps(sent.headers)
    assert response.id == "resp_fake0" and response.output_text == fake.text() and response.metadata == {"k": "v"}
    assert_matches_schema(fake.responses[response.id], "Response")
    # byte for byte both ways: fields we do not know reach the upstream untouched, its spacing comes back
    body = b'{"model" : "gpt-4o",   "input":"Hi", "future_field": {"x": 1}}'
    answer = raw.post("/responses", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200 and fake.requests[-1].body == body
    assert answer.text.startswith('{"id": "resp_fake1", "object": "response", ')


def test_stream_is_relayed_event_for_event(oa, raw, fake):
    with oa.responses.stream(model="gpt-4o-mini", input="Hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.type for e in events] == EVENTS and [e.sequence_number for e in events] == list(range(len(EVENTS)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == fake.text()
    assert final.output_text == fake.text() and final.status == "completed"
    assert fake.requests[0].json() == {"model": "gpt-4o-mini", "input": "Hello", "stream": True}
    with raw.stream("POST", "/responses", json={"model": "gpt-4o-mini", "input": "Hi", "stream": True}) as response:
        text = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [frame for frame in text.split("\n\n") if frame]
    assert [f.split("\n")[0] for f in frames] == [f"event: {name}" for name in EVENTS]
    for frame in frames:
        assert_matches_schema(json.loads(frame.split("\n", 1)[1].removeprefix("data: ")), "ResponseStreamEvent")


def test_ids_not_stored_here_are_the_upstreams(oa, raw, fake, key):
    made = oa.responses.create(model="gpt-4o", input="Hello")
    got = oa.responses.retrieve(made.id)
    assert (got.id, got.output_text) == (made.id, fake.text())
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("GET", f"/v1/responses/{made.id}")
    assert sent.headers["authorization"] == f"Bearer {KEY}" and key not in json.dumps(sent.headers)
    # sub-resources and query strings are passed on as they are
    assert raw.get(f"/responses/{made.id}/input_items", params={"limit": 2}).status_code == 404  # the fake keeps no items
    assert (fake.requests[-1].path, fake.requests[-1].query) == (f"/v1/responses/{made.id}/input_items", "limit=2")
    assert raw.post(f"/responses/{made.id}/cancel").status_code == 404 and fake.requests[-1].path == f"/v1/responses/{made.id}/cancel"
    # an id this tenant never created here is not asked about upstream (one key upstream serves every tenant)
    asked = len(fake.requests)
    with pytest.raises(openai.NotFoundError):
        oa.responses.retrieve("resp_nowhere")
    other = oa.responses.create(model="gpt-4o", input="Hello again")
    with openai.OpenAI(base_url=str(oa.base_url), api_key=new_key(), max_retries=0, timeout=10) as stranger:
        with pytest.raises(openai.NotFoundError):
            stranger.responses.retrieve(other.id)
        with pytest.raises(openai.NotFoundError):
            stranger.responses.delete(other.id)
    assert len(fake.requests) == asked + 1  # only the create
    assert oa.responses.delete(made.id) is None
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("DELETE", f"/v1/responses/{made.id}") and made.id not in fake.responses


def test_input_tokens_are_counted_by_the_upstream(raw, fake):
    body = {"model": "gpt-4o", "input": "Hello there", "instructions": "Be brief."}
    counted = raw.post("/responses/input_tokens", json=body)
    [sent] = fake.requests
    assert (sent.path, sent.json()) == ("/v1/responses/input_tokens", body) and sent.headers["authorization"] == f"Bearer {KEY}"
    assert counted.json() == {"object": "response.input_tokens", "input_tokens": max(1, len(sent.body) // 16)}
    # a model answered here is counted here
    assert raw.post("/responses/input_tokens", json={**body, "model": "o3-mini"}).json()["input_tokens"] > 0 and len(fake.requests) == 1


def test_responses_stored_here_stay_here(oa, fake):
    # A model the routes leave to the offline model answers and stores here; its id is not relayed.
    mine = oa.responses.create(model="o3-mini", input="Tell me about lighthouses.")
    assert mine.id.startswith("resp_") and not mine.id.startswith("resp_fake")
    assert oa.responses.retrieve(mine.id).output_text == mine.output_text
    assert [item.type for item in oa.responses.input_items.list(mine.id)] == ["message"]
    assert fake.requests == []


def test_a_provider_without_responses_is_translated_to_chat(oa, fake):
    response = oa.responses.create(model="local-llama", input="Hello", instructions="Be brief.")
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions" and sent.json()["messages"][0] == {"role": "system", "content": "Be brief."}
    assert response.id.startswith("resp_") and not response.id.startswith("resp_fake") and response.output_text == fake.text()
    assert oa.responses.retrieve(response.id).output_text == fake.text() and len(fake.requests) == 1  # stored here


def test_upstream_errors_pass_through(oa, fake):
    fake.fail_next(1, 429, retry_after=0.1, match="/responses")
    with pytest.raises(openai.RateLimitError) as caught:
        oa.responses.create(model="gpt-4o", input="Hello")
    assert caught.value.response.headers["retry-after"] == "0.1" and caught.value.body["code"] == "rate_limit_exceeded"


def test_the_responses_option():
    def speaks(env: dict) -> dict:
        router = build_router(Settings.from_env(env), Offline(), environ={})
        try:
            assert router.responses_provider() is next((p for p in router.providers.values() if getattr(p, "speaks_responses", False)), None)
            return {name: getattr(p, "speaks_responses", False) for name, p in router.providers.items() if name != "offline"}
        finally:
            asyncio.run(router.close())
    assert speaks({"UNDERSTUDY_OPENAI_API_KEY": "sk"}) == {"openai": True}  # OpenAI's own URL
    assert speaks({"UNDERSTUDY_OPENAI_BASE_URL": "http://localhost:11434/v1"}) == {"openai": False}
    assert speaks({"UNDERSTUDY_OPENAI_BASE_URL": "http://localhost:11434/v1", "UNDERSTUDY_OPENAI_RESPONSES": "1"}) == {"openai": True}
    assert speaks({"UNDERSTUDY_OPENAI_API_KEY": "sk", "UNDERSTUDY_OPENAI_RESPONSES": "0"}) == {"openai": False}
    providers = [{"name": "a", "base_url": "http://x/v1", "responses": True}, {"name": "b", "base_url": "http://x/v1"}]
    assert speaks({"UNDERSTUDY_PROVIDERS": json.dumps(providers)}) == {"a": True, "b": False}
    for bad in ({"name": "c", "kind": "anthropic", "responses": True}, {"name": "d", "responses": "yes"}):
        with pytest.raises(ValueError, match="responses"):
            speaks({"UNDERSTUDY_PROVIDERS": json.dumps([bad])})


class Offline:
    info = ProviderInfo("offline", "offline")

    async def close(self) -> None:
        pass
