"""What OpenAI refuses, refused here with its status, code, param and words (issue "Fidelity: reject what
OpenAI rejects, in its words"): every test drives the live server through the official SDK, or raw HTTP
where the SDK cannot send the request."""
from __future__ import annotations

import openai
import pytest

from tests.conftest import assert_openai_error

MODEL = "gpt-4o-mini"


def _error(excinfo) -> dict:
    return excinfo.value.body if isinstance(excinfo.value.body, dict) else {}


# --- 4. numeric ranges, from the spec's minimum/maximum -------------------------------------------------

def test_chat_temperature_above_max(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=3)
    error = _error(excinfo)
    assert error["code"] == "decimal_above_max_value" and error["param"] == "temperature"
    assert error["message"] == "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3.0 instead."


def test_chat_temperature_below_min(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=-1)
    error = _error(excinfo)
    assert error["code"] == "decimal_below_min_value"
    assert error["message"] == "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1.0 instead."


def test_responses_top_p_and_max_output_tokens(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model=MODEL, input="hi", top_p=1.5)
    assert _error(excinfo)["code"] == "decimal_above_max_value" and _error(excinfo)["param"] == "top_p"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model=MODEL, input="hi", max_output_tokens=5)
    error = _error(excinfo)
    assert error["code"] == "integer_below_min_value" and error["param"] == "max_output_tokens"
    assert error["message"] == "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead."


def test_completions_and_runs_and_assistants_ranges(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.completions.create(model=MODEL, prompt="hi", presence_penalty=3)
    assert _error(excinfo)["code"] == "decimal_above_max_value" and _error(excinfo)["param"] == "presence_penalty"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.assistants.create(model=MODEL, temperature=3)
    assert _error(excinfo)["message"] == "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3.0 instead."
    assistant = client.beta.assistants.create(model=MODEL)
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.threads.create_and_run(assistant_id=assistant.id, top_p=2)
    assert _error(excinfo)["code"] == "decimal_above_max_value" and _error(excinfo)["param"] == "top_p"
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, temperature=-0.5)
    assert _error(excinfo)["code"] == "decimal_below_min_value" and _error(excinfo)["param"] == "temperature"


def test_in_range_values_still_accepted(client):
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], temperature=2, top_p=0)
    client.responses.create(model=MODEL, input="hi", max_output_tokens=16, temperature=0)

