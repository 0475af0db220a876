"""Runs and run steps end to end with the official SDK: function tools and requires_action, file_search
with citations, code_interpreter, streaming event order, cancel, expiry, limits, restart mid-run, tenancy."""
from __future__ import annotations

import json
import signal
import time

import httpx
import openai
import pytest

from tests.conftest import new_key, start_server
from tests.support.openapi import assert_matches_schema

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city", "unit"], "additionalProperties": False},
    },
}
MODEL = "gpt-4o-mini"


def wait_for(client, thread_id: str, run_id: str, statuses: tuple[str, ...], timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run stuck in {run.status}"
        time.sleep(0.05)


def assistant_texts(client, thread_id: str) -> list[str]:
    messages = client.beta.threads.messages.list(thread_id, order="asc")
    return [m.content[0].text.value for m in messages.data if m.role == "assistant"]


@pytest.fixture
def assistant(client):
    return client.beta.assistants.create(model=MODEL, name="Helper", instructions="Be brief.", tools=[WEATHER])


def test_text_run_completes_with_a_message_and_a_step(client, assistant, http):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me about lighthouses."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed" and run.completed_at and run.started_at and run.expires_at is None
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0
    assert run.instructions == "Be brief." and run.model == MODEL and run.tools[0].function.name == "get_weather"
    texts = assistant_texts(client, thread.id)
    assert len(texts) == 1 and "lighthouses" in texts[0].lower()
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    assert [s.type for s in steps.data] == ["message_creation"] and steps.data[0].status == "completed"
    assert steps.data[0].usage.total_tokens == run.usage.total_tokens
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.run_id == run.id and message.assistant_id == assistant.id and message.status == "completed"
    assert steps.data[0].step_details.message_creation.message_id == message.id
    raw = http.get(f"/threads/{thread.id}/runs/{run.id}", headers={"OpenAI-Beta": "assistants=v2"}).json()
    assert_matches_schema(raw, "RunObject")
    raw_step = http.get(f"/threads/{thread.id}/runs/{run.id}/steps/{steps.data[0].id}").json()
    assert_matches_schema(raw_step, "RunStepObject")


def test_function_call_requires_action_then_completes(client, assistant, http):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Use get_weather for Paris please."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "requires_action" and run.required_action.type == "submit_tool_outputs"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    arguments = json.loads(calls[0].function.arguments)
    assert set(arguments) == {"city", "unit"} and arguments["unit"] in ("c", "f")
    assert_matches_schema(http.get(f"/threads/{thread.id}/runs/{run.id}").json(), "RunObject")
    # One active run per thread, and no messages while it waits.
    with pytest.raises(openai.BadRequestError) as second:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert "already has an active run" in second.value.message
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    with pytest.raises(openai.BadRequestError) as wrong:
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_nope", "output": "x"}])
    assert wrong.value.body["param"] == "tool_outputs[0].tool_call_id"
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "22 degrees and sunny"}], poll_interval_ms=50
    )
    assert run.status == "completed" and run.required_action is None
    assert "22 degrees and sunny" in assistant_texts(client, thread.id)[-1]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"] and all(s.status == "completed" for s in steps)
    assert steps[0].step_details.tool_calls[0].function.output == "22 degrees and sunny"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}])


def test_streamed_run_events_in_openai_order(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Describe a quiet harbour."}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        names = [event.event for event in stream]
        final = stream.get_final_run()
        text = "".join(stream.get_final_messages()[0].content[0].text.value)
    head = ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created", "thread.run.step.in_progress",
            "thread.message.created", "thread.message.in_progress"]
    assert names[: len(head)] == head
    deltas = [n for n in names[len(head):] if n == "thread.message.delta"]
    assert len(deltas) > 3 and names[len(head): len(head) + len(deltas)] == deltas
    assert names[len(head) + len(deltas):] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    assert final.status == "completed" and "harbour" in text.lower()


def test_streamed_tool_call_then_streamed_outputs(client, assistant, server, api_key):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Call get_weather for Oslo."}])
    events = list(client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    names = [e.event for e in events]
    assert names[:5] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created", "thread.run.step.in_progress"]
    assert "thread.run.step.delta" in names and names[-1] == "thread.run.requires_action"
    run = events[-1].data
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with client.beta.threads.runs.submit_tool_outputs_stream(thread_id=thread.id, run_id=run.id,
                                                             tool_outputs=[{"tool_call_id": call.id, "output": "cold, -3"}]) as stream:
        after = [e.event for e in stream]
        assert stream.get_final_run().status == "completed"
    assert after[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"] and after[-1] == "thread.run.completed"
    # The raw stream ends with OpenAI's `done` event.
    with httpx.stream("POST", f"{server.url}/v1/threads/runs", headers={"Authorization": f"Bearer {api_key}"},
                      json={"assistant_id": run.assistant_id, "stream": True, "thread": {"messages": [{"role": "user", "content": "hi"}]}}) as raw:
        body = raw.read().decode()
    assert body.startswith("event: thread.created\n") and body.endswith("event: done\ndata: [DONE]\n\n")


def test_create_and_run_and_overrides(client, assistant):
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Say something about otters."}]},
        instructions="Override.", model="gpt-4.1-mini", tools=[], temperature=0.5, metadata={"k": "v"}, poll_interval_ms=50,
    )
    assert run.status == "completed" and run.instructions == "Override." and run.model == "gpt-4.1-mini" and run.tools == []
    assert run.temperature == 0.5 and run.metadata == {"k": "v"}
    run = client.beta.threads.runs.update(run.id, thread_id=run.thread_id, metadata={"k": "w"})
    assert run.metadata == {"k": "w"}
    listed = client.beta.threads.runs.list(run.thread_id)
    assert [r.id for r in listed.data] == [run.id]
    second = client.beta.threads.runs.create_and_poll(thread_id=run.thread_id, assistant_id=assistant.id, additional_instructions="Extra.",
                                                      additional_messages=[{"role": "user", "content": "And about beavers?"}], poll_interval_ms=50)
    assert second.instructions == "Be brief.\n\nExtra." and "beavers" in assistant_texts(client, run.thread_id)[-1].lower()
    page = client.beta.threads.runs.list(run.thread_id, limit=1)
    assert [r.id for r in page.data] == [second.id] and page.has_more


# An answer longer than the smallest limit OpenAI accepts (256 tokens): 300 list items, as the schema asks.
LONG_ANSWER = {"type": "json_schema", "json_schema": {"name": "inventory", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string"}, "minItems": 300}},
}}}


def test_limits_truncation_and_bad_input(client, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "List everything aboard the ship."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, tools=[],
                                                   response_format=LONG_ANSWER, poll_interval_ms=50)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens <= 256 and run.max_completion_tokens == 256
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete" and message.incomplete_details.reason == "max_tokens"
    long_question = "Describe the harbour, " + "the cranes and the gulls and the tide, " * 60
    client.beta.threads.messages.create(thread.id, role="user", content=long_question)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=50)
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"
    for name in ("max_prompt_tokens", "max_completion_tokens"):  # the spec's minimum, in OpenAI's words
        with pytest.raises(openai.BadRequestError) as bad:
            client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, **{name: 255})
        assert bad.value.body["code"] == "integer_below_min_value" and bad.value.body["param"] == name
        assert bad.value.body["message"] == f"Invalid '{name}': integer below minimum value. Expected a value >= 256, but got 255 instead."
    for _ in range(3):
        client.beta.threads.messages.create(thread.id, role="user", content="Another question about rivers.")
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, tools=[],
                                                   truncation_strategy={"type": "last_messages", "last_messages": 1}, poll_interval_ms=50)
    assert run.status == "completed" and run.truncation_strategy.last_messages == 1
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id="thread_nope", assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, tool_choice="sometimes")
    assert bad.value.body["param"] == "tool_choice"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run.id, thread_id=thread.id)  # completed
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, include=["step_details.nope"])


def test_cancel_while_waiting_for_outputs(client, assistant):
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "get weather for Rome"}]}, poll_interval_ms=50,
    )
    assert run.status == "requires_action"
    cancelled = client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data[0]
    assert step.status == "cancelled"
    # The thread is free again.
    client.beta.threads.messages.create(run.thread_id, role="user", content="never mind")


def test_file_search_cites_the_file(client, tmp_path):
    path = tmp_path / "handbook.txt"
    path.write_text("Project Nightjar is the codename for the lighthouse restoration. Its budget is 42 million.\n\n"
                    "The canteen opens at noon and serves soup on Fridays.\n")
    uploaded = client.files.create(file=path.open("rb"), purpose="assistants")
    store = client.vector_stores.create(name="handbook")
    client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=uploaded.id)
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}],
                                              tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "What is Project Nightjar?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    search = steps[0].step_details.tool_calls[0]
    assert search.type == "file_search" and search.file_search.results[0].file_id == uploaded.id
    assert search.file_search.results[0].content is None  # only with include[]
    included = client.beta.threads.runs.steps.retrieve(
        steps[0].id, thread_id=thread.id, run_id=run.id, include=["step_details.tool_calls[*].file_search.results[*].content"]
    )
    assert "Nightjar" in included.step_details.tool_calls[0].file_search.results[0].content[0].text
    message = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    text = message.content[0].text
    assert "Nightjar" in text.value
    citation = text.annotations[0]
    assert citation.type == "file_citation" and citation.file_citation.file_id == uploaded.id
    assert text.value[citation.start_index:citation.end_index] == citation.text


def test_code_interpreter_runs_the_code(client):
    assistant = client.beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    prompt = "Use the code interpreter:\n```python\nprint(6 * 7)\nopen('result.txt', 'w').write('done')\n```"
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": prompt}]},
                                                  poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc").data[0]
    call = step.step_details.tool_calls[0]
    assert call.type == "code_interpreter" and "print(6 * 7)" in call.code_interpreter.input
    logs = [o.logs for o in call.code_interpreter.outputs if o.type == "logs"]
    assert "42" in logs[0]
    written = [line for line in logs if "result.txt" in line]
    file_id = written[0].split(": ")[-1].rstrip("]")
    assert client.files.content(file_id).read() == b"done"


def test_tenancy(client, assistant, server):
    run = client.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hello"}]},
                                                  poll_interval_ms=50)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        with pytest.raises(openai.NotFoundError):
            other.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id)
        with pytest.raises(openai.NotFoundError):
            other.beta.threads.runs.create(thread_id=run.thread_id, assistant_id=assistant.id)


# ---- a slow offline model: cancelling mid-run, expiry, restart ----

@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slow-runs")


SLOW_ENV = {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "40", "UNDERSTUDY_RUN_EXPIRY_SECONDS": "2"}


@pytest.fixture(scope="module")
def slow_server(slow_dir):
    server = start_server(slow_dir, SLOW_ENV)
    yield server
    server.stop()


def slow_client(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_cancel_mid_run(slow_server):
    with slow_client(slow_server, new_key()) as client:
        assistant = client.beta.assistants.create(model=MODEL)
        run = client.beta.threads.create_and_run(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Tell a long tale."}]})
        wait_for(client, run.thread_id, run.id, ("in_progress",))
        cancelling = client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
        assert cancelling.status in ("cancelling", "cancelled")
        run = wait_for(client, run.thread_id, run.id, ("cancelled",))
        assert run.cancelled_at and run.completed_at is None
        for step in client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data:
            assert step.status in ("cancelled", "completed")


def test_requires_action_expires(slow_server):
    with slow_client(slow_server, new_key()) as client:
        assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER])
        run = client.beta.threads.create_and_run(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "get_weather in Lima"}]})
        run = wait_for(client, run.thread_id, run.id, ("requires_action",))
        time.sleep(max(run.expires_at - time.time(), 0) + 1.2)
        expired = client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
        assert expired.status == "expired" and expired.required_action is None
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": "x", "output": "y"}])
        assert client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data[0].status == "expired"


def test_run_survives_a_server_kill(slow_dir):
    """SIGKILL mid-stream of the model's reply: the restarted server finishes the run, once."""
    data_dir = slow_dir / "restart"
    server = start_server(data_dir, SLOW_ENV)
    key = new_key()
    try:
        with slow_client(server, key) as client:
            assistant = client.beta.assistants.create(model=MODEL)
            run = client.beta.threads.create_and_run(assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Tell a long tale of ships."}]})
            deadline = time.monotonic() + 20
            while not client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        server.stop(signal.SIGKILL)
        server = start_server(data_dir, SLOW_ENV)
        with slow_client(server, key) as client:
            done = wait_for(client, run.thread_id, run.id, ("completed",), timeout=30)
            assert done.status == "completed"
            steps = client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
            assert [s.type for s in steps] == ["message_creation"] and steps[0].status == "completed"
            assert len(assistant_texts(client, run.thread_id)) == 1
    finally:
        server.stop()


def test_tool_choice_parallel_calls_and_response_format(client):
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}
    assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER, lookup])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Use get_weather and lookup for Kyiv."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert [c.function.name for c in run.required_action.submit_tool_outputs.tool_calls] == ["get_weather", "lookup"]
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, parallel_tool_calls=False, poll_interval_ms=50)
    assert run.parallel_tool_calls is False and len(run.required_action.submit_tool_outputs.tool_calls) == 1
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50,
                                                   tool_choice={"type": "function", "function": {"name": "lookup"}})
    assert [c.function.name for c in run.required_action.submit_tool_outputs.tool_calls] == ["lookup"]
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, tool_choice="none",
                                                   response_format={"type": "json_object"}, poll_interval_ms=50)
    assert run.status == "completed" and run.response_format.type == "json_object"
    assert isinstance(json.loads(assistant_texts(client, thread.id)[-1]), dict)
