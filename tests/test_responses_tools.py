"""Hosted tools in the Responses API with the official SDK: `image_generation` (run by the engine through
the image service: an image_generation_call with the picture, streamed with partial images, then the
model's reply) and `web_search` (refused for want of web access, unless cache-only as Codex sends it)."""
from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import assert_openai_error
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"
IMAGE_TOOL = {"type": "image_generation", "size": "512x384", "quality": "low"}


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_image_generation(client, http):
    response = client.responses.create(model=MODEL, input="Draw a picture of a lighthouse at dusk.", tools=[IMAGE_TOOL])
    assert response.status == "completed", response.error
    assert [item.type for item in response.output] == ["image_generation_call", "message"]
    call, message = response.output
    assert call.id.startswith("ig_") and call.status == "completed"
    image = decoded(call.result)
    assert image.format == "PNG" and image.size == (512, 384)
    assert (call.size, call.output_format, call.quality, call.background) == ("512x384", "png", "low", "opaque")
    assert call.revised_prompt
    assert message.role == "assistant" and response.output_text
    tool = response.tools[0]
    assert tool.type == "image_generation" and tool.size == "512x384" and tool.output_format == "png" and tool.partial_images == 0
    stored = http.get(f"/responses/{response.id}").json()
    assert stored["output"][0]["result"] == call.result
    assert_matches_schema(stored, "Response")
    # The tool's output format is respected; a forced call draws even when the message asks for no picture.
    forced = client.responses.create(model=MODEL, input="Something about harbours.", tool_choice={"type": "image_generation"},
                                     tools=[{**IMAGE_TOOL, "output_format": "jpeg"}])
    call = forced.output[0]
    assert call.type == "image_generation_call" and call.output_format == "jpeg" and decoded(call.result).format == "JPEG"
    assert forced.output[-1].type == "message"
    # Without a request for a picture the model just answers.
    plain = client.responses.create(model=MODEL, input="Tell me about harbours.", tools=[IMAGE_TOOL])
    assert [item.type for item in plain.output] == ["message"]


def test_image_generation_streamed(client, server, api_key):
    tool = {**IMAGE_TOOL, "partial_images": 1}
    with client.responses.stream(model=MODEL, input="Please generate an image of a red kite.", tools=[tool]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    start = kinds.index("response.output_item.added")
    assert kinds[start:start + 6] == [
        "response.output_item.added", "response.image_generation_call.in_progress", "response.image_generation_call.generating",
        "response.image_generation_call.partial_image", "response.image_generation_call.completed", "response.output_item.done",
    ]
    added, partial, done = events[start], events[start + 3], events[start + 5]
    item_id = added.item.id
    assert added.item.type == "image_generation_call" and added.item.status == "in_progress" and added.output_index == 0
    assert partial.item_id == item_id and partial.output_index == 0 and partial.partial_image_index == 0
    assert decoded(partial.partial_image_b64).size == (512, 384)
    assert done.item.status == "completed" and decoded(done.item.result).size == (512, 384)
    assert "response.output_text.delta" in kinds[start + 6:] and kinds[-1] == "response.completed"
    assert [item.type for item in final.output] == ["image_generation_call", "message"]
    assert final.output[0].result == done.item.result
    # Raw SSE: every event (the image ones included) matches OpenAI's schema.
    with httpx.stream("POST", f"{server.url}/v1/responses", headers={"Authorization": f"Bearer {api_key}"}, timeout=60,
                      json={"model": MODEL, "input": "An illustration of a harbour, please.", "tools": [tool], "stream": True}) as raw:
        body = raw.read().decode()
    seen = set()
    for line in body.split("\n"):
        if line.startswith("data: "):
            event = json.loads(line[6:])
            seen.add(event["type"])
            assert_matches_schema(event, "ResponseStreamEvent")
    assert {"response.image_generation_call.partial_image", "response.image_generation_call.completed"} <= seen


def test_image_generation_limits(client):
    """`max_tool_calls` counts image generations; a prompt the image model refuses fails the call, not the response."""
    limited = client.responses.create(model=MODEL, input="Draw a lighthouse.", tools=[IMAGE_TOOL], max_tool_calls=0)
    assert [item.type for item in limited.output] == ["message"]
    refused = client.responses.create(model=MODEL, input="Draw this picture: " + "waves " * 6000, tools=[IMAGE_TOOL])
    call, message = refused.output
    assert refused.status == "completed" and call.type == "image_generation_call" and call.status == "failed" and call.result is None
    assert call.error.param == "prompt" and "too long" in call.error.message and message.type == "message"


def test_image_generation_tool_settings_checked(http):
    error = assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "image_generation", "size": "7x7"}]}),
                                400, param="tools[0].size")
    assert "7x7" in error["message"]
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "image_generation", "model": "dall-e-3"}]}),
                        400, param="tools[0].model")


@pytest.mark.parametrize("kind", ["web_search", "web_search_preview", "web_search_2025_08_26"])
def test_web_search_not_available(client, http, kind):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="Latest news?", tools=[{"type": "function", "name": "noop", "parameters": {}}, {"type": kind}])
    error = refused.value.body
    assert refused.value.status_code == 400 and error["param"] == "tools[1]" and error["code"] == "unsupported_tool"
    assert error["message"] == f"The {kind} tool is not available: this server has no web access (no upstream provider serves it)."
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": kind, "external_web_access": True}]}),
                        400, param="tools[0]", code="unsupported_tool")


def test_cache_only_web_search_accepted(client, http):
    """What Codex sends on every request: echoed, not offered; the model answers without it."""
    tool = {"type": "web_search", "external_web_access": False, "search_content_types": ["text", "image"]}
    raw = http.post("/responses", json={"model": MODEL, "input": "Latest news about lighthouses?", "tools": [tool]})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["status"] == "completed" and [i["type"] for i in body["output"]] == ["message"]
    assert body["tools"][0]["type"] == "web_search" and body["tools"][0]["external_web_access"] is False
    # Forcing it still says it is not available.
    error = assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [tool], "tool_choice": {"type": "web_search_preview"}}),
                                400, param="tool_choice")
    assert "not available" in error["message"]
