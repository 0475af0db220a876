"""The Responses API end to end with the official SDK: text, streaming event order, function tools with
previous_response_id, chains, structured output, limits, store/delete, input items and tokens,
file_search, hosted tools echoed or refused, background (poll, cancel, replay, restart), tenancy, schema."""
from __future__ import annotations

import json
import signal
import time

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import upstream_env
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}


def test_text_response(client, http):
    response = client.responses.create(model=MODEL, input="Tell me about lighthouses.", instructions="Be brief.", metadata={"k": "v"},
                                       temperature=0.5, user="u-1", prompt_cache_key="cache-1", safety_identifier="s-1")
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert "lighthouses" in response.output_text.lower()
    message = response.output[0]
    assert message.type == "message" and message.id.startswith("msg_") and message.role == "assistant" and message.status == "completed"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.instructions == "Be brief." and response.metadata == {"k": "v"} and response.temperature == 0.5
    assert response.store is True and response.error is None and response.incomplete_details is None and response.previous_response_id is None
    raw = http.get(f"/responses/{response.id}").json()
    assert raw["output"][0]["content"][0]["text"] == response.output_text
    assert "output_text" not in raw
    assert_matches_schema(raw, "Response")
    assert client.responses.retrieve(response.id).output_text == response.output_text
    # Message items as input, content parts, developer role.
    again = client.responses.create(model=MODEL, input=[
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "input_text", "text": "What about harbours?"}]},
    ])
    assert "harbours" in again.output_text.lower()


PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_images_files_and_reasoning_items_as_input(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Quarterly notes.")
    uploaded = client.files.create(file=path.open("rb"), purpose="user_data")
    response = client.responses.create(model=MODEL, input=[
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "user", "content": [
            {"type": "input_text", "text": "What is in this picture and file?"},
            {"type": "input_image", "image_url": PIXEL, "detail": "low"},
            {"type": "input_file", "file_id": uploaded.id},
            {"type": "input_file", "filename": "a.txt", "file_data": "data:text/plain;base64,aGVsbG8="},
        ]},
    ], reasoning={"effort": "low"}, truncation="auto")
    assert response.status == "completed" and "image" in response.output_text
    assert response.reasoning.effort == "low" and response.truncation == "auto"
    kinds = [item.type for item in client.responses.input_items.list(response.id, order="asc").data]
    assert kinds == ["reasoning", "message"]


def test_streaming_event_order(client, server, api_key):
    with client.responses.stream(model=MODEL, input="Describe a quiet harbour.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    names = [e.type for e in events]
    head = ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    tail = ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    assert names[:4] == head and names[-4:] == tail
    middle = names[4:-4]
    assert len(middle) > 3 and set(middle) == {"response.output_text.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and "harbour" in deltas.lower()
    assert events[0].response.status == "in_progress" and final.status == "completed"
    assert client.responses.retrieve(final.id).output_text == final.output_text
    # Raw SSE: named events, no [DONE].
    with httpx.stream("POST", f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {api_key}"},
                      json={"model": MODEL, "input": "hi", "stream": True}) as raw:
        body = raw.read().decode()
    assert body.startswith("event: response.created\ndata: ") and "[DONE]" not in body
    for line in body.split("\n"):
        if line.startswith("data: "):
            event = json.loads(line[6:])
            assert_matches_schema(event, "ResponseStreamEvent")
            if "response" in event:
                assert_matches_schema(event["response"], "Response")
    assert body.rstrip().split("\n")[-2] == "event: response.completed"


def test_function_tool_round_trip(client, http):
    first = client.responses.create(model=MODEL, input="Use get_weather for Paris please.", tools=[WEATHER])
    assert_matches_schema(http.get(f"/responses/{first.id}").json(), "Response")
    assert first.status == "completed" and [o.type for o in first.output] == ["function_call"]
    call = first.output[0]
    assert call.id.startswith("fc_") and call.name == "get_weather" and call.status == "completed"
    assert json.loads(call.arguments).keys() == {"city"}
    assert first.tools[0].name == "get_weather" and first.tools[0].strict is True
    second = client.responses.create(model=MODEL, previous_response_id=first.id, tools=[WEATHER],
                                     input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 degrees and sunny"}])
    assert second.previous_response_id == first.id
    assert "22 degrees and sunny" in second.output_text
    assert_matches_schema(http.get(f"/responses/{second.id}/input_items").json(), "ResponseItemList")
    # Streamed function call arguments.
    with client.responses.stream(model=MODEL, input="Call get_weather for Oslo.", tools=[WEATHER]) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in names and "response.function_call_arguments.done" in names
    assert final.output[0].type == "function_call" and json.loads(final.output[0].arguments)["city"]
    # tool_choice and parallel_tool_calls are honoured and echoed.
    forced = client.responses.create(model=MODEL, input="hello", tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"},
                                     parallel_tool_calls=False)
    assert forced.output[0].type == "function_call" and forced.parallel_tool_calls is False and forced.tool_choice.name == "get_weather"
    none = client.responses.create(model=MODEL, input="Use get_weather for Rome", tools=[WEATHER], tool_choice="none")
    assert none.output[0].type == "message"


def test_custom_tool_items(client):
    patch = {"type": "custom", "name": "apply_patch", "description": "Edit files.", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
    response = client.responses.create(model=MODEL, tools=[patch], input=[
        {"role": "user", "content": "Fix the typo."},
        {"type": "custom_tool_call", "call_id": "call_1", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "patch applied cleanly"},
    ])
    assert response.status == "completed" and "patch applied cleanly" in response.output_text
    assert response.tools[0].type == "custom" and response.tools[0].name == "apply_patch"
    kinds = [i.type for i in client.responses.input_items.list(response.id, order="asc").data]
    assert kinds == ["message", "custom_tool_call", "custom_tool_call_output"]


def test_logprobs(client, http):
    response = client.responses.create(model=MODEL, input="Say something short.", include=["message.output_text.logprobs"], top_logprobs=2)
    part = response.output[0].content[0]
    assert part.logprobs and "".join(p.token for p in part.logprobs) == part.text
    assert all(len(p.top_logprobs) == 2 and p.logprob <= 0 for p in part.logprobs)
    assert response.top_logprobs == 2
    assert_matches_schema(http.get(f"/responses/{response.id}").json(), "Response")
    with client.responses.stream(model=MODEL, input="Say something short.", include=["message.output_text.logprobs"]) as stream:
        deltas = [e for e in stream if e.type == "response.output_text.delta"]
    assert all(e.logprobs for e in deltas)
    assert client.responses.create(model=MODEL, input="Say something short.").output[0].content[0].logprobs == []


def test_previous_response_chain(client):
    first = client.responses.create(model=MODEL, input="My favourite colour is turquoise.")
    second = client.responses.create(model=MODEL, input="I also like walruses.", previous_response_id=first.id)
    third = client.responses.create(model=MODEL, input="What do I like?", previous_response_id=second.id)
    assert third.usage.input_tokens > second.usage.input_tokens > first.usage.input_tokens
    counted = client.responses.input_tokens.count(model=MODEL, input="What do I like?", previous_response_id=second.id)
    assert counted.input_tokens > client.responses.input_tokens.count(model=MODEL, input="What do I like?").input_tokens
    # input_items holds this response's own input only.
    assert [i.content[0].text for i in client.responses.input_items.list(third.id).data] == ["What do I like?"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_nope")
    assert missing.value.body["param"] == "previous_response_id"


def test_structured_output(client):
    class Fact(BaseModel):
        subject: str
        year: int

    parsed = client.responses.parse(model=MODEL, input="A fact about the printing press.", text_format=Fact)
    assert isinstance(parsed.output_parsed, Fact)
    assert parsed.text.format.type == "json_schema"
    loose = client.responses.create(model=MODEL, input="Give JSON about otters.", text={"format": {"type": "json_object"}})
    assert isinstance(json.loads(loose.output_text), dict)


def test_limits_store_and_delete(client, http):
    cut = client.responses.create(model=MODEL, input="Write a long story about the sea and ships.", max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens" and cut.max_output_tokens == 16
    assert cut.output[0].status == "incomplete" and cut.usage.output_tokens <= 16
    unstored = client.responses.create(model=MODEL, input="Forget me.", store=False)
    assert unstored.status == "completed" and unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    kept = client.responses.create(model=MODEL, input="Remember me.")
    deleted = http.delete(f"/responses/{kept.id}").json()
    assert deleted == {"id": kept.id, "object": "response", "deleted": True}
    error = assert_openai_error(http.get(f"/responses/{kept.id}"), 404, param=None)
    assert error["message"] == f"Response with id '{kept.id}' not found."
    assert_openai_error(http.delete(f"/responses/{kept.id}"), 404)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(cut.id)  # not a background response
    # Hosted tools nothing here serves are echoed, not offered (Codex always lists a cache-only web_search); forcing one is refused.
    # (Live web_search is refused outright and image_generation runs: tests/test_responses_tools.py.)
    cache_only = {"type": "web_search", "external_web_access": False}
    listed = client.responses.create(model=MODEL, input="news?", tools=[cache_only, WEATHER])
    assert listed.status == "completed" and [t.type for t in listed.tools] == ["web_search", "function"]
    error = assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [cache_only],
                                                              "tool_choice": {"type": "web_search_preview"}}), 400, param="tool_choice")
    assert error["message"] == "The web_search_preview tool is not available: no upstream provider serves it."
    # code_interpreter runs in a container now (tests/test_responses_code_interpreter.py): forcing it makes the call
    forced = client.responses.create(model=MODEL, input="run", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                                     tool_choice={"type": "code_interpreter"})
    assert forced.output[0].type == "code_interpreter_call" and forced.output[0].status == "completed"
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "bogus": 1}), 400, param="bogus")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", background=True, store=False)
    with pytest.raises(openai.BadRequestError) as templated:
        client.responses.create(model=MODEL, input="x", prompt={"id": "pmpt_123"})
    assert templated.value.body["param"] == "prompt"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")


def test_input_items_pagination_and_tokens(client):
    texts = ["one apple", "two bananas", "three cherries", "four dates", "five elderberries"]
    response = client.responses.create(model=MODEL, input=[{"role": "user", "content": t} for t in texts])
    listed = client.responses.input_items.list(response.id)
    assert [i.content[0].text for i in listed.data] == texts[::-1]  # newest first by default
    assert all(i.id.startswith("msg_") and i.type == "message" and i.role == "user" for i in listed.data)
    page = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == texts[:2] and page.has_more
    after = client.responses.input_items.list(response.id, limit=2, order="asc", after=page.last_id)
    assert [i.content[0].text for i in after.data] == texts[2:4]
    everything = [i.content[0].text for i in client.responses.input_items.list(response.id, limit=2, order="asc")]
    assert everything == texts  # the SDK follows the cursor
    counted = client.responses.input_tokens.count(model=MODEL, input="Count these tokens please.", instructions="Be brief.")
    assert counted.object == "response.input_tokens" and 5 < counted.input_tokens < 40


def test_file_search(client, tmp_path, http):
    path = tmp_path / "handbook.txt"
    path.write_text("Project Nightjar is the codename for the lighthouse restoration. Its budget is 42 million.\n\n"
                    "The canteen opens at noon and serves soup on Fridays.\n")
    uploaded = client.files.create(file=path.open("rb"), purpose="assistants")
    store = client.vector_stores.create(name="handbook")
    client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=uploaded.id)
    tools = [{"type": "file_search", "vector_store_ids": [store.id]}]
    response = client.responses.create(model=MODEL, input="What is Project Nightjar?", tools=tools, include=["file_search_call.results"])
    assert response.status == "completed" and [o.type for o in response.output] == ["file_search_call", "message"]
    search = response.output[0]
    assert search.id.startswith("fs_") and search.status == "completed" and search.queries
    assert search.results[0].file_id == uploaded.id and "Nightjar" in search.results[0].text
    assert "Nightjar" in response.output_text
    citation = response.output[1].content[0].annotations[0]
    assert citation.type == "file_citation" and citation.file_id == uploaded.id and citation.filename == "handbook.txt"
    assert_matches_schema(http.get(f"/responses/{response.id}").json(), "Response")
    with client.responses.stream(model=MODEL, input="When does the canteen open?", tools=tools) as stream:
        names = [e.type for e in stream]
        final = stream.get_final_response()
    assert names[2:6] == ["response.output_item.added", "response.file_search_call.in_progress", "response.file_search_call.searching",
                          "response.file_search_call.completed"]
    assert final.output[0].results is None and final.output[1].type == "message"
    assert names[-5:] == ["response.output_text.annotation.added", "response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    later = client.responses.retrieve(final.id, include=["file_search_call.results"])
    assert "canteen" in " ".join(r.text for r in later.output[0].results)
    missing = client.responses.create(model=MODEL, input="What is X?", tools=[{"type": "file_search", "vector_store_ids": ["vs_nope"]}])
    assert missing.status == "failed" and missing.error.code == "invalid_prompt" and "vs_nope" in missing.error.message
    capped = client.responses.create(model=MODEL, input="What is Project Nightjar?", tools=tools, max_tool_calls=0)
    assert [o.type for o in capped.output] == ["message"] and capped.max_tool_calls == 0
    forced = client.responses.create(model=MODEL, input="hello", tools=tools, tool_choice={"type": "file_search"})
    assert [o.type for o in forced.output] == ["file_search_call", "message"]
    filtered = client.responses.create(model=MODEL, input="What is Project Nightjar?", include=["file_search_call.results"],
                                       tools=[{**tools[0], "filters": {"type": "eq", "key": "team", "value": "nobody"}}])
    assert filtered.output[0].results == [] and filtered.tools[0].filters.key == "team"


def test_tenancy(client, server):
    response = client.responses.create(model=MODEL, input="hello")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.input_items.list(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model=MODEL, input="x", previous_response_id=response.id)


def test_conversation(client, http):
    conversation = client.conversations.create().id
    first = client.responses.create(model=MODEL, input="My dog is called Biscuit.", conversation=conversation)
    assert first.conversation.id == conversation
    second = client.responses.create(model=MODEL, input="What is my dog called?", conversation={"id": conversation})
    assert second.usage.input_tokens > first.usage.input_tokens
    listed = http.get(f"/conversations/{conversation}/items", params={"order": "asc"}).json()["data"]
    assert [(i["type"], i.get("role")) for i in listed] == [("message", "user"), ("message", "assistant")] * 2
    assert listed[3]["id"] == second.output[0].id
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", conversation=conversation, previous_response_id=first.id)


# ---- background: a slow offline model ----

SLOW_ENV = {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "40"}


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slow-responses")


@pytest.fixture(scope="module")
def slow_server(slow_dir):
    server = start_server(slow_dir, SLOW_ENV)
    yield server
    server.stop()


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def wait_for(client, response_id: str, statuses: tuple[str, ...], timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        assert time.monotonic() < deadline, f"response stuck in {response.status}"
        time.sleep(0.05)


def test_background_poll_and_replay(slow_server):
    with sdk(slow_server, new_key()) as client:
        queued = client.responses.create(model=MODEL, input="Tell a short tale of ships.", background=True)
        assert queued.status in ("queued", "in_progress") and queued.background is True
        done = wait_for(client, queued.id, ("completed",))
        assert "ships" in done.output_text.lower() and done.usage.output_tokens > 0
        events = list(client.responses.retrieve(queued.id, stream=True, starting_after=2))
        assert events[0].sequence_number == 3 and events[-1].type == "response.completed"
        with pytest.raises(openai.BadRequestError):
            client.responses.cancel(queued.id)  # already completed
        # Replayed while it executes: what was already sent, then live events, without gaps.
        running = client.responses.create(model=MODEL, input="Tell another tale of harbours.", background=True)
        wait_for(client, running.id, ("in_progress",))
        time.sleep(0.2)
        live = list(client.responses.retrieve(running.id, stream=True, starting_after=1))
        assert [e.sequence_number for e in live] == list(range(2, 2 + len(live)))
        assert live[-1].type == "response.completed" and "harbours" in live[-1].response.output_text.lower()
        # Streamed from the start in the background: the SDK's helper accumulates it.
        with client.responses.stream(model=MODEL, input="Describe a lighthouse.", background=True) as stream:
            names = [e.type for e in stream]
            final = stream.get_final_response()
        assert names[:3] == ["response.created", "response.queued", "response.in_progress"] and names[-1] == "response.completed"
        assert final.status == "completed" and final.background is True and "lighthouse" in final.output_text.lower()


def test_background_cancel(slow_server):
    with sdk(slow_server, new_key()) as client:
        response = client.responses.create(model=MODEL, input="Tell a very long tale about the sea.", background=True)
        wait_for(client, response.id, ("in_progress",))
        cancelled = client.responses.cancel(response.id)
        assert cancelled.status == "cancelled"
        time.sleep(0.5)
        assert client.responses.retrieve(response.id).status == "cancelled"
        assert client.responses.cancel(response.id).status == "cancelled"  # idempotent


def test_background_survives_a_server_kill(slow_dir):
    data_dir = slow_dir / "restart"
    server = start_server(data_dir, SLOW_ENV)
    key = new_key()
    try:
        with sdk(server, key) as client:
            response = client.responses.create(model=MODEL, input="Tell a long tale of harbours and ships.", background=True)
            wait_for(client, response.id, ("in_progress",))
            time.sleep(0.3)  # mid-stream of the model's reply
            assert client.responses.retrieve(response.id).status == "in_progress"
        server.stop(signal.SIGKILL)
        server = start_server(data_dir, SLOW_ENV)
        with sdk(server, key) as client:
            done = wait_for(client, response.id, ("completed",), timeout=30)
            assert [o.type for o in done.output] == ["message"] and "harbours" in done.output_text.lower()
            assert len(client.responses.input_items.list(response.id).data) == 1
            # The stored output items are the finished attempt's only: a chain sees one reply.
            chained = client.responses.input_tokens.count(model=MODEL, previous_response_id=response.id, input="And then?")
            spelled = client.responses.input_tokens.count(model=MODEL, input=[
                {"role": "user", "content": "Tell a long tale of harbours and ships."},
                {"role": "assistant", "content": done.output_text}, {"role": "user", "content": "And then?"}])
            assert chained.input_tokens == spelled.input_tokens
    finally:
        server.stop()


# ---- upstream providers: a response is a chat-completions call to whichever provider serves the model ----

UPSTREAM_KEY = "sk-upstream-fixed-key"


@pytest.fixture(scope="module")
def upstream():
    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream(chunks=5, api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def routed_server(upstream, tmp_path_factory):
    providers = [{"name": "up-openai", "kind": "openai", "base_url": upstream.openai_url, "api_key": UPSTREAM_KEY},
                 {"name": "up-anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": UPSTREAM_KEY}]
    routes = [{"model": "gpt-*", "provider": "up-openai"}, {"model": "claude-*", "provider": "up-anthropic"}]
    env = upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
    server = start_server(tmp_path_factory.mktemp("responses-routed"), env)
    yield server
    server.stop()


def test_upstream_providers(routed_server, upstream):
    upstream.reset()
    with sdk(routed_server, new_key()) as client:
        response = client.responses.create(model="gpt-4o", input="Hello", instructions="Be brief.", max_output_tokens=50)
        assert response.status == "completed" and response.output_text == upstream.text()
        sent = [r for r in upstream.requests if r.path.endswith("/chat/completions")][-1].json()
        assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
        assert sent["stream"] is True and sent["max_completion_tokens"] == 50
        called = client.responses.create(model="gpt-4o", input="Hello", tools=[WEATHER], tool_choice="required")
        assert called.output[0].type == "function_call" and called.output[0].name == "get_weather"
        with client.responses.stream(model="claude-sonnet-4-5", input="Hello") as stream:
            final = stream.get_final_response()
        assert final.output_text == upstream.text() and any(r.path.endswith("/messages") for r in upstream.requests)
        upstream.fail_next(1, 500)
        with pytest.raises(openai.InternalServerError):
            client.responses.create(model="gpt-4o", input="Hello")
