"""Behaviour agent frameworks rely on, through the official SDK: a run's forced tool_choice binds its first
model call only; run events carry objects as they were when the event happened; the offline model acts
as frameworks expect a model to (Pydantic AI's final_result, schemas in the prompt, never `{}`)."""
from __future__ import annotations

import json

import openai
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


# ---- the offline model, as agent frameworks drive it ----

FINAL_RESULT = {  # Pydantic AI's output tool
    "type": "function",
    "function": {
        "name": "final_result",
        "description": "The final response which ends this conversation",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "summary": {"type": "string"}},
                       "required": ["city", "summary"]},
    },
}


def test_forced_call_after_a_tool_result_moves_on_to_a_function_not_yet_called(client):
    messages = [{"role": "user", "content": "What is the weather in Oslo? Use get_weather."}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, FINAL_RESULT], tool_choice="required")
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    messages += [first.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "cold, -3"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, FINAL_RESULT], tool_choice="required")
    calls = second.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["final_result"]
    assert set(json.loads(calls[0].function.arguments)) == {"city", "summary"}
    # Every function called already: the forced call is still made (a model must call something).
    messages += [second.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": calls[0].id, "content": "ok"}]
    third = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, FINAL_RESULT], tool_choice="required")
    assert len(third.choices[0].message.tool_calls) == 1


def test_an_all_optional_schema_is_never_answered_with_an_empty_object(client):
    optional = {"type": "object", "properties": {"name": {"type": "string"}}}  # one optional field: `{}` was drawn 30% of the time
    tool = {"type": "function", "function": {"name": "extract", "parameters": optional}}
    for seed in range(12):
        completion = client.chat.completions.create(model=MODEL, seed=seed, tools=[tool], tool_choice="required",
                                                    messages=[{"role": "user", "content": f"Extract the name from note {seed}: Ada wrote it."}])
        assert json.loads(completion.choices[0].message.tool_calls[0].function.arguments) != {}
        structured = client.chat.completions.create(model=MODEL, seed=seed, messages=[{"role": "user", "content": f"Note {seed}"}],
                                                    response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": optional}})
        assert json.loads(structured.choices[0].message.content) != {}


PERSON = {"properties": {"name": {"title": "Name", "type": "string"}, "age": {"title": "Age", "type": "integer"},
                         "tags": {"title": "Tags", "type": "array", "items": {"type": "string"}}},
          "required": ["name", "age", "tags"], "title": "Person", "type": "object"}


def _is_person(value) -> bool:
    return (isinstance(value, dict) and set(value) >= {"name", "age", "tags"} and isinstance(value["name"], str)
            and isinstance(value["age"], int) and isinstance(value["tags"], list))


def test_json_object_follows_a_schema_written_in_the_system_prompt(client):
    # Instructor's JSON mode: the schema in the system message, response_format json_object.
    system = ("As a genius expert, your task is to understand the content and provide the parsed objects in json that match "
              f"the following json_schema:\n\n{json.dumps(PERSON, indent=2)}\n\nMake sure to return an instance of the JSON, not the schema itself")
    completion = client.chat.completions.create(model=MODEL, response_format={"type": "json_object"},
                                                messages=[{"role": "system", "content": system}, {"role": "user", "content": "Ada Lovelace, 36, mathematician"}])
    assert _is_person(json.loads(completion.choices[0].message.content))


def test_langchain_format_instructions_are_followed_not_their_example(client):
    # LangChain's PydanticOutputParser instructions, verbatim: an example schema first, then the real one.
    instructions = (
        'The output should be formatted as a JSON instance that conforms to the JSON schema below.\n\nAs an example, for the schema '
        '{"properties": {"foo": {"title": "Foo", "description": "a list of strings", "type": "array", "items": {"type": "string"}}}, '
        '"required": ["foo"]}\nthe object {"foo": ["bar", "baz"]} is a well-formatted instance of the schema. The object '
        '{"properties": {"foo": ["bar", "baz"]}} is not well-formatted.\n\nHere is the output schema:\n```\n'
        + json.dumps(PERSON) + "\n```")
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"Describe Ada Lovelace.\n{instructions}"}])
    assert _is_person(json.loads(completion.choices[0].message.content))
    # Pydantic AI's PromptedOutput: the schema in the instructions, no response_format, plain JSON back.
    prompted = client.responses.create(model=MODEL, input="Describe Ada Lovelace.", instructions=(
        "Always respond with a JSON object that's compatible with this schema:\n\n" + json.dumps(PERSON)
        + "\n\nDon't include any text or Markdown fencing before or after."))
    assert _is_person(json.loads(prompted.output_text))


def test_a_prompt_that_mentions_braces_but_no_schema_gets_prose(client):
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": 'Explain this JSON: {"a": 1, "b": [2]}'}])
    text = completion.choices[0].message.content
    with pytest.raises(ValueError):
        json.loads(text)


# ---- Responses: service_tier, compaction ----

def test_responses_report_the_service_tier_that_served_them(client):
    assert client.responses.create(model=MODEL, input="hi").service_tier == "default"
    assert client.responses.create(model=MODEL, input="hi", service_tier="flex").service_tier == "flex"
    assert client.responses.create(model=MODEL, input="hi", service_tier="fast").service_tier == "priority"  # OpenAI's words for fast
    with client.responses.stream(model=MODEL, input="hi", service_tier="priority") as stream:
        assert stream.get_final_response().service_tier == "priority"
    assert client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], service_tier="fast").service_tier == "priority"


def test_compaction_keeps_user_messages_and_one_summary_item_the_next_turn_understands(client, http):
    first = client.responses.create(model=MODEL, input="Plan a landing page for a dog petting cafe.")
    history = [{"role": "user", "content": "Plan a landing page for a dog petting cafe."}] + [item.model_dump(exclude_none=True) for item in first.output]
    compacted = client.responses.compact(model=MODEL, input=history)
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    kinds = [(item.type, getattr(item, "role", None)) for item in compacted.output]
    assert kinds == [("message", "user"), ("compaction", None)]
    summary_item = compacted.output[-1]
    assert summary_item.id.startswith("cmp_") and summary_item.encrypted_content
    assert "dog petting cafe" not in summary_item.encrypted_content  # opaque, as OpenAI's is
    assert compacted.usage.input_tokens > 0 and compacted.usage.output_tokens > 0
    raw = http.post("/responses/compact", json={"model": MODEL, "input": history})
    assert raw.status_code == 200
    from tests.support.openapi import assert_matches_schema
    assert_matches_schema(raw.json(), "CompactResource")

    # The compacted window replaces the history: the summary reaches the model (it costs input tokens).
    window = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    users_only = window[:-1]
    with_summary = client.responses.input_tokens.count(model=MODEL, input=window + [{"role": "user", "content": "Now the footer."}])
    without = client.responses.input_tokens.count(model=MODEL, input=users_only + [{"role": "user", "content": "Now the footer."}])
    assert with_summary.input_tokens > without.input_tokens
    follow_up = client.responses.create(model=MODEL, input=window + [{"role": "user", "content": "Now the footer."}])
    assert follow_up.status == "completed"
    stored = client.responses.input_items.list(follow_up.id, order="asc").data
    assert [item.type for item in stored] == ["message", "compaction", "message"]

    # Compacting from a stored response's chain works the same; compacting the compacted window folds the summary in.
    chained = client.responses.compact(model=MODEL, previous_response_id=first.id, input="And a pricing section.")
    assert [i.type for i in chained.output] == ["message", "message", "compaction"]
    again = client.responses.compact(model=MODEL, input=window)
    assert [i.type for i in again.output] == ["message", "compaction"]


def test_compaction_refuses_what_openai_refuses(client, http):
    forged = {"type": "compaction", "id": "cmp_forged", "encrypted_content": "gAAAAABpM0Yj-not-ours="}
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODEL, input=[forged, {"role": "user", "content": "hi"}])
    assert bad.value.body["code"] == "invalid_encrypted_content" and bad.value.body["param"] == "input[0].encrypted_content"
    with pytest.raises(openai.NotFoundError):
        client.responses.compact(model="no-such-model", input="hi")
    missing = http.post("/responses/compact", json={"input": "hi"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as empty:
        client.responses.compact(model=MODEL, input=[])
    assert empty.value.body["param"] == "input"
