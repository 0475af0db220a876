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


# --- 5. id prefixes, checked before the lookup -----------------------------------------------------------

def test_responses_conversation_of_the_wrong_shape(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model=MODEL, input="hi", conversation="abc")
    error = _error(excinfo)
    assert error["code"] == "invalid_value" and error["param"] == "conversation"
    assert error["message"] == "Invalid 'conversation': 'abc'. Expected an ID that begins with 'conv'."
    with pytest.raises(openai.NotFoundError):  # a well-shaped unknown id is still a 404
        client.responses.create(model=MODEL, input="hi", conversation="conv_unknown")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model=MODEL, input="hi", previous_response_id="abc")
    assert _error(excinfo)["message"] == "Invalid 'previous_response_id': 'abc'. Expected an ID that begins with 'resp'."
    assert _error(excinfo)["param"] == "previous_response_id"


def test_path_ids_of_the_wrong_shape(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.conversations.retrieve("abc")
    assert _error(excinfo)["message"] == "Invalid 'conversation_id': 'abc'. Expected an ID that begins with 'conv'."
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.threads.retrieve("abc")
    assert _error(excinfo)["code"] == "invalid_value" and _error(excinfo)["param"] == "thread_id"
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.threads.runs.create(thread_id="abc", assistant_id="asst_x")
    assert _error(excinfo)["message"] == "Invalid 'thread_id': 'abc'. Expected an ID that begins with 'thread'."
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.batches.retrieve("abc")
    assert _error(excinfo)["message"] == "Invalid 'batch_id': 'abc'. Expected an ID that begins with 'batch'."
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_unknown")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve("thread_unknown")
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.beta.assistants.retrieve("abc")
    assert _error(excinfo)["message"] == "Invalid 'assistant_id': 'abc'. Expected an ID that begins with 'asst'."
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve("asst_unknown")


# --- 7. a multipart upload without its file ------------------------------------------------------------

def test_file_upload_without_file_part_names_file(http):
    response = http.post("/files", files={"purpose": (None, "assistants"), "colour": (None, "blue")})
    error = assert_openai_error(response, 400, param="file", code="missing_required_parameter")
    assert error["message"] == "Missing required parameter: 'file'."
    response = http.post("/files", files={"purpose": (None, "assistants")})
    assert_openai_error(response, 400, param="file", code="missing_required_parameter")


# --- 8. batches: lines checked at validation, a batch input file must be JSONL ------------------------

def _batch_errors(client, lines: list[dict]) -> list:
    import io
    import json
    import time

    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    source = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 30
    while batch.status in ("validating", "in_progress", "finalizing") and time.monotonic() < deadline:
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "failed", batch
    return batch.errors.data


def _chat_line(**body) -> dict:
    return {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **body}}


def test_batch_line_with_stream_fails_validation(client):
    [error] = _batch_errors(client, [_chat_line(stream=True)])
    assert (error.code, error.param, error.line) == ("streaming_unsupported", "body.stream", 1)


def test_batch_line_missing_model_or_messages(client):
    line = _chat_line()
    del line["body"]["model"]
    [error] = _batch_errors(client, [line])
    assert (error.code, error.param) == ("invalid_request", "body.model")
    line = _chat_line()
    del line["body"]["messages"]
    [error] = _batch_errors(client, [line])
    assert (error.code, error.param) == ("invalid_request", "body.messages")


def test_batch_unknown_model_fails_validation(client):
    [error] = _batch_errors(client, [_chat_line(model="no-such-model")])
    assert (error.code, error.param, error.line) == ("model_not_found", "body.model", 1)


def test_batch_line_missing_method_or_url(client):
    line = _chat_line()
    del line["method"]
    [error] = _batch_errors(client, [line])
    assert (error.code, error.param, error.message) == ("missing_required_parameter", "method", "Missing required parameter: 'method'.")
    line = _chat_line()
    del line["url"]
    [error] = _batch_errors(client, [line])
    assert (error.code, error.param) == ("missing_required_parameter", "url")


def test_batch_upload_must_be_jsonl(http):
    response = http.post("/files", files={"file": ("data.csv", b"a,b\n1,2\n")}, data={"purpose": "batch"})
    assert_openai_error(response, 400, param="file")


# --- 6. broken base64 in an image data URL -------------------------------------------------------------

BROKEN = "data:image/png;base64,@@not-base64@@"


def test_chat_image_with_broken_base64(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": BROKEN}}]}])
    error = _error(excinfo)
    assert error["code"] == "invalid_value" and error["param"] == "messages[0].content[1].image_url.url"


def test_responses_input_image_with_broken_base64(client):
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.responses.create(model=MODEL, input=[{"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"}, {"type": "input_image", "image_url": BROKEN, "detail": "auto"}]}])
    error = _error(excinfo)
    assert error["code"] == "invalid_value" and error["param"] == "input[0].content[1].image_url"
