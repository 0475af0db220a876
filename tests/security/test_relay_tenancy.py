"""Relay mode keeps tenants apart: the upstream sees one key, ours, for every tenant, so an id a relayed
body names (a previous response, a conversation, an item, a code container, an audio reply, an upstream
file) must be the tenant's own, or the request is OpenAI's 404 and the upstream is never contacted.

A live server whose gpt-* models go to an upstream that speaks Responses, claude-* to an Anthropic one
and gemini-* to a Gemini one, all the real fake upstream on loopback (tests/support/fake_upstream.py)."""
from __future__ import annotations


import anthropic
import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env

KEY = "sk-upstream-fixed-key"


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream(chunks=3, api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    providers = [{"name": "speaks", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY, "responses": True},
                 {"name": "claude", "kind": "anthropic", "base_url": upstream.url, "api_key": KEY},
                 {"name": "gemini", "kind": "gemini", "base_url": upstream.url, "api_key": KEY}]
    routes = [{"model": "gpt-*", "provider": "speaks"}, {"model": "claude-*", "provider": "claude"}, {"model": "gemini-*", "provider": "gemini"}]
    env = upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
    srv = start_server(tmp_path_factory.mktemp("relay-tenancy"), env)
    yield srv
    srv.stop()


@pytest.fixture
def fake(upstream):
    upstream.reset()
    yield upstream
    upstream.reset()


def _sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
def alice(server):
    with _sdk(server, new_key()) as client:
        yield client


@pytest.fixture
def bob(server):
    with _sdk(server, new_key()) as client:
        yield client


@pytest.fixture
def bob_raw(server, bob):
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {bob.api_key}"}, timeout=10) as client:
        yield client


def _refused(fake, call, *, message: str, param: str, error=openai.NotFoundError) -> None:
    """`call` is a 404 naming the id, and the upstream saw nothing of it."""
    before = len(fake.requests)
    with pytest.raises(error) as caught:
        call()
    assert len(fake.requests) == before, [r.path for r in fake.requests[before:]]
    body = caught.value.body if isinstance(caught.value.body, dict) else {}
    assert body.get("message") == message and body.get("param") == param, body


def test_previous_response_of_another_tenant_is_not_relayed(alice, bob, fake):
    made = alice.responses.create(model="gpt-4o", input="My secret is 42.")
    message = f"Previous response with id '{made.id}' not found."
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="What was my secret?", previous_response_id=made.id),
             message=message, param="previous_response_id")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", previous_response_id=made.id, stream=True),
             message=message, param="previous_response_id")
    _refused(fake, lambda: bob.responses.input_tokens.count(model="gpt-4o", input="x", previous_response_id=made.id),
             message=message, param="previous_response_id")
    # an id nobody created here is unknown: not asked about upstream either
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", previous_response_id="resp_fake0"),
             message="Previous response with id 'resp_fake0' not found.", param="previous_response_id")
    # its owner chains on it, relayed as it is
    follow = alice.responses.create(model="gpt-4o", input="And now?", previous_response_id=made.id)
    assert fake.requests[-1].json()["previous_response_id"] == made.id and follow.previous_response_id == made.id
    assert alice.responses.input_tokens.count(model="gpt-4o", input="x", previous_response_id=made.id).input_tokens > 0
    # retrieve and delete stay bound as before
    for call in (lambda: bob.responses.retrieve(made.id), lambda: bob.responses.delete(made.id)):
        _refused(fake, call, message=f"Response with id '{made.id}' not found.", param=None)


def test_a_streamed_response_binds_its_ids_before_they_reach_the_client(alice, bob, fake):
    with alice.responses.stream(model="gpt-4o-mini", input="Hello") as stream:
        final = stream.get_final_response()
    item = final.output[0].id
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", previous_response_id=final.id),
             message=f"Previous response with id '{final.id}' not found.", param="previous_response_id")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=[{"type": "item_reference", "id": item}]),
             message=f"Item with id '{item}' not found.", param="input[0].id")
    alice.responses.create(model="gpt-4o", input=[{"type": "item_reference", "id": item}], previous_response_id=final.id)
    assert fake.requests[-1].json()["input"] == [{"type": "item_reference", "id": item}]


def test_conversations_of_another_tenant_are_not_relayed(alice, bob, fake):
    conversation = alice.conversations.create(items=[{"type": "message", "role": "user", "content": "My secret is 42."}])
    message = f"Conversation with id '{conversation.id}' not found."
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", conversation=conversation.id), message=message, param="conversation")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", conversation={"id": conversation.id}), message=message, param="conversation")
    _refused(fake, lambda: bob.responses.input_tokens.count(model="gpt-4o", input="x", conversation=conversation.id),
             message=message, param="conversation")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", conversation="conv_upstream_only"),
             message="Conversation with id 'conv_upstream_only' not found.", param="conversation")
    alice.responses.create(model="gpt-4o", input="x", conversation=conversation.id)
    assert fake.requests[-1].json()["conversation"] == conversation.id


def test_items_of_another_tenant_are_not_relayed(alice, bob, fake):
    made = alice.responses.create(model="gpt-4o", input="Hello")
    item = made.output[0].id
    reference = [{"type": "item_reference", "id": item}]
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=reference), message=f"Item with id '{item}' not found.", param="input[0].id")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=[{"id": item}]), message=f"Item with id '{item}' not found.", param="input[0].id")
    _refused(fake, lambda: bob.responses.input_tokens.count(model="gpt-4o", input=reference),
             message=f"Item with id '{item}' not found.", param="input[0].id")
    # an item carrying its content under another tenant's id (the upstream would link it to that tenant's)
    replay = [{"type": "message", "id": item, "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "hi", "annotations": []}]}]
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=replay), message=f"Item with id '{item}' not found.", param="input[0].id")
    # ...while a label nobody minted is only a label (Codex numbers its own messages)
    bob.responses.create(model="gpt-4o", input=[{"type": "message", "id": "msg_6266e813-69d7-5097-981a", "role": "user", "content": "hi"}])
    # the owner references and replays its own items
    alice.responses.create(model="gpt-4o", input=reference)
    alice.responses.create(model="gpt-4o", input=[*replay, {"role": "user", "content": "again"}])
    assert fake.requests[-1].json()["input"][0]["id"] == item
    # nor is an unknown item fetched by id
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=[{"type": "item_reference", "id": "msg_upstream_only"}]),
             message="Item with id 'msg_upstream_only' not found.", param="input[0].id")


def test_other_ids_a_responses_body_names(alice, bob, fake):
    mine = bob.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    theirs = alice.files.create(file=("secret.txt", b"42"), purpose="user_data")
    part = {"role": "user", "content": [{"type": "input_file", "file_id": theirs.id}]}
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input=[part]), message=f"No such File object: {theirs.id}",
             param="input[0].content[0].file_id")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", tools=[{"type": "code_interpreter", "container": "cntr_someone"}]),
             message="Container with id 'cntr_someone' not found.", param="tools[0].container")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [theirs.id]}}]),
             message=f"No such File object: {theirs.id}", param="tools[0].container.file_ids")
    store = alice.vector_stores.create(name="secrets")
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", tools=[{"type": "file_search", "vector_store_ids": [store.id]}]),
             message=f"Vector store with id '{store.id}' not found.", param="tools[0].vector_store_ids")
    # prompt templates live in the upstream account: no tenant's
    _refused(fake, lambda: bob.responses.create(model="gpt-4o", input="x", prompt={"id": "pmpt_operator"}),
             message="Prompt with id 'pmpt_operator' not found.", param="prompt.id")
    bob.responses.create(model="gpt-4o", input=[{"role": "user", "content": [{"type": "input_file", "file_id": mine.id}]}])


def test_chat_audio_replies_of_another_tenant_are_not_relayed(alice, bob, fake):
    asked = {"model": "gpt-4o-audio-preview", "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}
    reply = alice.chat.completions.create(messages=[{"role": "user", "content": "Say 42"}], **asked)
    audio_id = reply.choices[0].message.audio.id
    turn = [{"role": "user", "content": "Say 42"}, {"role": "assistant", "audio": {"id": audio_id}}, {"role": "user", "content": "Again"}]
    _refused(fake, lambda: bob.chat.completions.create(messages=turn, **asked), message=f"Audio with id '{audio_id}' not found.",
             param="messages[1].audio.id")
    alice.chat.completions.create(messages=turn, **asked)
    assert fake.requests[-1].json()["messages"][1] == {"role": "assistant", "audio": {"id": audio_id}}
    # streamed: bound from the stream
    chunks = list(alice.chat.completions.create(messages=[{"role": "user", "content": "Say 43"}], stream=True, **asked))
    streamed = next(c.choices[0].delta.audio.id for c in chunks if c.choices and getattr(c.choices[0].delta, "audio", None))
    turn[1] = {"role": "assistant", "audio": {"id": streamed}}
    _refused(fake, lambda: bob.chat.completions.create(messages=turn, **asked), message=f"Audio with id '{streamed}' not found.",
             param="messages[1].audio.id")


def test_anthropic_containers_of_another_tenant_are_not_relayed(server, fake):
    tools = [{"type": "code_execution_20250825", "name": "code_execution"}]
    hello = [{"role": "user", "content": "Run print(42)"}]
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as alice, \
            anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as bob:
        made = alice.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=hello, tools=tools)
        container = made.container.id
        before = len(fake.requests)
        with pytest.raises(anthropic.NotFoundError) as caught:
            bob.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=hello, tools=tools, container=container)
        assert caught.value.body["error"]["message"] == f"Container with id '{container}' not found." and len(fake.requests) == before
        alice.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=hello, tools=tools, container=container)
        assert fake.requests[-1].json()["container"] == container
        # a streamed answer names its container in message_delta: bound too
        with alice.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=hello, tools=tools) as stream:
            streamed = stream.get_final_message().container.id
        with pytest.raises(anthropic.NotFoundError):
            bob.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=hello, tools=tools, container=streamed)
        # Files API blocks name the upstream account's files
        document = [{"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "file_011operator"}}]}]
        with pytest.raises(anthropic.NotFoundError):
            bob.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=document)
        assert len(fake.requests) == before + 2


def test_gemini_cached_contents_and_files_are_not_relayed(bob_raw, fake):
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    for named in ({"cachedContent": "cachedContents/operator"},
                  {"contents": [{"role": "user", "parts": [{"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]}]}):
        answer = bob_raw.post("/v1beta/models/gemini-2.5-flash:generateContent", json={**body, **named})
        assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND", answer.text
    assert fake.requests == []
    assert bob_raw.post("/v1beta/models/gemini-2.5-flash:generateContent", json=body).status_code == 200


def test_error_shape_is_openais(bob_raw, alice, fake):
    made = alice.responses.create(model="gpt-4o", input="Hello")
    answer = bob_raw.post("/v1/responses", json={"model": "gpt-4o", "input": "x", "previous_response_id": made.id})
    assert_openai_error(answer, 404, param="previous_response_id")
    assert len(fake.requests) == 1
