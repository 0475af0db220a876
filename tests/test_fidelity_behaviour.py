"""Behaviour agent frameworks rely on, through the official SDK: a run's forced tool_choice binds its first
model call only; run events carry objects as they were when the event happened; the offline model acts
as frameworks expect a model to (Pydantic AI's final_result, schemas in the prompt, never `{}`)."""
from __future__ import annotations

import json

import pytest

MODEL = "gpt-4o-mini"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_choice_binds_the_first_call_then_the_run_completes(client, tool_choice):
    assistant = client.beta.assistants.create(model=MODEL, tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Call get_weather for Oslo."}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, tool_choice=tool_choice, poll_interval_ms=50)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
                                                                tool_outputs=[{"tool_call_id": call.id, "output": "cold, -3"}])
    assert run.status == "completed"
    # The run keeps the tool_choice it was created with; only the model calls after tool outputs go on as `auto`.
    assert run.tool_choice == tool_choice if isinstance(tool_choice, str) else run.tool_choice.function.name == "get_weather"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    reply = client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert reply.role == "assistant" and reply.content[0].text.value


def test_streamed_run_events_carry_objects_as_they_were(client):
    assistant = client.beta.assistants.create(model=MODEL)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Describe a quiet harbour."}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = {}
        for event in stream:
            events.setdefault(event.event, event.data)
    assert events["thread.message.created"].status == "in_progress"
    assert events["thread.message.in_progress"].status == "in_progress"
    assert events["thread.message.completed"].status == "completed" and events["thread.message.completed"].content[0].text.value
    assert events["thread.run.step.created"].status == "in_progress" and events["thread.run.step.completed"].status == "completed"
    assert events["thread.run.in_progress"].status == "in_progress" and events["thread.run.completed"].status == "completed"
