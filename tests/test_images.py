"""Images API against the live server with the official SDK: real pictures of the requested size,
format and count, deterministic, per-model rules as OpenAI's 400s, streaming, edits, variations."""
from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image, ImageDraw

from tests.conftest import assert_openai_error, start_server
from tests.support.openapi import assert_matches_schema

# The SDK marks DALL·E-era endpoints (variations) deprecated; they are still part of the API.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def _decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def _png(size=(64, 64), colour=(20, 120, 200, 255), mode="RGBA", fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour[: len(mode)] if mode != "RGBA" else colour).save(out, fmt)
    return out.getvalue()


def _json(response) -> dict:
    return response.model_dump(exclude_unset=True)


def test_default_model_answers_with_a_url_that_downloads_without_a_key(client, server):
    response = client.images.generate(prompt="A lighthouse at dusk", size="256x256")
    body = _json(response)
    assert_matches_schema(body, "ImagesResponse")
    assert set(body["data"][0]) == {"url"} and "usage" not in body
    url = response.data[0].url
    assert url.startswith(server.url + "/v1/images/content/")
    download = httpx.get(url)  # no Authorization header, as OpenAI's signed URLs
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(download.content))
    assert image.format == "PNG" and image.size == (256, 256)
    missing = httpx.get(url.replace(".png", ".jpeg"))
    assert_openai_error(missing, 404)
    assert_openai_error(httpx.get(f"{server.url}/v1/images/content/not-an-image.png"), 404)


def test_generated_url_follows_the_host_header(http, server):
    host = f"localhost:{server.url.rsplit(':', 1)[1]}"
    body = http.post("/images/generations", json={"prompt": "x", "size": "256x256"}, headers={"Host": host}).json()
    assert body["data"][0]["url"].startswith(f"http://{host}/v1/images/content/")


@pytest.mark.parametrize(
    "model, size, expected",
    [
        ("dall-e-2", "256x256", (256, 256)),
        ("dall-e-2", "512x512", (512, 512)),
        ("dall-e-3", "1792x1024", (1792, 1024)),
        ("dall-e-3", "1024x1792", (1024, 1792)),
        ("gpt-image-1", "1536x1024", (1536, 1024)),
        ("gpt-image-1", "auto", (1024, 1024)),
        ("gpt-image-2", "1280x720", (1280, 720)),
    ],
)
def test_each_model_draws_its_sizes(client, model, size, expected):
    extra = {} if model.startswith("gpt") else {"response_format": "b64_json"}
    response = client.images.generate(prompt="Size check", model=model, size=size, quality="low" if model.startswith("gpt") else "standard", **extra)
    assert _decode(response.data[0].b64_json).size == expected
    if model.startswith("gpt"):
        assert response.usage.output_tokens > 0 and response.size == f"{expected[0]}x{expected[1]}"


def test_n_images_are_distinct_and_deterministic(client):
    first = client.images.generate(prompt="Three birds", n=3, size="256x256", response_format="b64_json")
    again = client.images.generate(prompt="Three birds", n=3, size="256x256", response_format="b64_json")
    other = client.images.generate(prompt="Three fish", n=1, size="256x256", response_format="b64_json")
    blobs = [d.b64_json for d in first.data]
    assert len(blobs) == 3 and len(set(blobs)) == 3
    assert blobs == [d.b64_json for d in again.data]
    assert other.data[0].b64_json not in blobs
    assert all(_decode(b).size == (256, 256) for b in blobs)


@pytest.mark.parametrize("fmt, pil", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_gpt_image_output_formats_and_usage(client, fmt, pil):
    response = client.images.generate(prompt="Format check", model="gpt-image-1", output_format=fmt, output_compression=80 if fmt != "png" else 100, quality="low")
    body = _json(response)
    assert_matches_schema(body, "ImagesResponse")
    assert body["output_format"] == fmt and body["background"] == "opaque" and body["quality"] == "low"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] and usage["input_tokens_details"]["text_tokens"] > 0
    image = _decode(response.data[0].b64_json)
    assert image.format == pil and image.size == (1024, 1024)
    assert response.data[0].url is None and response.data[0].revised_prompt is None


def test_transparent_background_has_alpha(client):
    response = client.images.generate(prompt="Cut-out", model="gpt-image-1", background="transparent", size="1024x1024", quality="low")
    image = _decode(response.data[0].b64_json)
    assert response.background == "transparent" and image.mode == "RGBA"
    assert image.getchannel("A").getextrema()[0] == 0


def test_gpt_only_parameter_selects_a_gpt_image_model(client):
    response = client.images.generate(prompt="Implied model", output_format="jpeg")
    assert response.usage is not None and _decode(response.data[0].b64_json).format == "JPEG"


def test_dall_e_3_revises_the_prompt(client):
    response = client.images.generate(prompt="A quiet harbour", model="dall-e-3", response_format="b64_json", style="natural")
    assert_matches_schema(_json(response), "ImagesResponse")
    assert response.data[0].revised_prompt.startswith("A quiet harbour")


def test_gif_and_svg_outputs(client):
    gif = client.images.generate(prompt="Animated", model="gpt-image-2", output_format="gif", frame_count=3, size="1024x1024", quality="low")
    image = _decode(gif.data[0].b64_json)
    assert image.format == "GIF" and image.n_frames == 3
    svg = client.images.generate(prompt="Vector <fox>", model="gpt-image-2", output_format="svg")
    text = base64.b64decode(svg.data[0].b64_json).decode()
    assert text.startswith("<svg") and 'width="1024"' in text and "&lt;fox&gt;" in text


@pytest.mark.parametrize(
    "params, status, param",
    [
        ({"model": "dall-e-3", "n": 2}, 400, "n"),
        ({"model": "dall-e-2", "size": "1792x1024"}, 400, "size"),
        ({"model": "dall-e-3", "size": "256x256"}, 400, "size"),
        ({"model": "gpt-image-1", "size": "512x512"}, 400, "size"),
        ({"model": "gpt-image-2", "size": "1000x1000"}, 400, "size"),
        ({"model": "dall-e-2", "quality": "hd"}, 400, "quality"),
        ({"model": "gpt-image-1", "quality": "hd"}, 400, "quality"),
        ({"n": 11}, 400, "n"),
        ({"n": 0}, 400, "n"),
        ({"model": "gpt-image-1", "response_format": "url"}, 400, "response_format"),
        ({"model": "dall-e-2", "stream": True}, 400, "stream"),
        ({"model": "gpt-image-1", "output_format": "jpeg", "background": "transparent"}, 400, "background"),
        ({"model": "gpt-image-1", "output_compression": 50}, 400, "output_compression"),
        ({"model": "gpt-image-1", "partial_images": 4, "stream": True}, 400, "partial_images"),
        ({"model": "gpt-4o"}, 400, "model"),
        ({"model": "no-such-model"}, 404, "model"),
        ({"size": 5}, 400, "size"),
        ({"colour": "red"}, 400, "colour"),
        ({"prompt": "x" * 1001}, 400, "prompt"),
        ({"prompt": ""}, 400, "prompt"),
    ],
)
def test_invalid_combinations_are_openai_errors(http, params, status, param):
    body = {"prompt": "Rules", **params}
    assert_openai_error(http.post("/images/generations", json=body), status, param=param)


def test_missing_prompt_and_bad_json(http):
    assert_openai_error(http.post("/images/generations", json={"model": "dall-e-2"}), 400, param="prompt", code="missing_required_parameter")
    assert_openai_error(http.post("/images/generations", content=b"{nope", headers={"content-type": "application/json"}), 400)


_STREAM_SCHEMAS = {"image_generation.partial_image": "ImageGenPartialImageEvent", "image_generation.completed": "ImageGenCompletedEvent"}


def test_streaming_sends_partial_images_then_the_final_one(client):
    stream = client.images.generate(prompt="Streaming", model="gpt-image-1", stream=True, partial_images=2, size="1024x1536", quality="low")
    events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    for event in events:
        assert_matches_schema(event.model_dump(exclude_unset=True), _STREAM_SCHEMAS[event.type])
        assert _decode(event.b64_json).size == (1024, 1536)
    assert events[-1].usage.total_tokens > 0
    final = client.images.generate(prompt="Streaming", model="gpt-image-1", size="1024x1536", quality="low")
    assert final.data[0].b64_json == events[-1].b64_json


def test_stream_wire_format_names_events(http):
    with http.stream("POST", "/images/generations", json={"prompt": "Wire", "model": "gpt-image-1", "stream": True, "quality": "low"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    assert text.startswith("event: image_generation.completed\ndata: {")


def _sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent-events body."""
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        frames.append((fields.get("event"), fields["data"]))
    return frames


def _assert_progress_stream(text: str, n: int, size: tuple[int, int], same_as: list[str] | None = None) -> None:
    frames = _sse(text)
    assert frames[-1] == ("done", "[DONE]")
    progress = [json.loads(data)["progress"] for event, data in frames if event == "progress"]
    assert progress == sorted(set(progress)) and progress[-1] == 100 and 0 < progress[0] < 100
    results = [json.loads(data) for event, data in frames if event == "result"]
    assert [r["index"] for r in results] == list(range(n)) and all(r["type"] == "result" for r in results)
    assert {event for event, _ in frames} == {"progress", "result", "done"}
    for result in results:
        assert _decode(result["b64_json"]).size == size
    if same_as is not None:  # the same pictures as the OpenAI framing and a plain answer
        assert [r["b64_json"] for r in results] == same_as


def test_gateway_progress_stream_when_the_request_asks_for_it(client, http):
    body = {"prompt": "Gateway", "model": "gpt-image-1", "stream": True, "quality": "low", "n": 2, "size": "1024x1024"}
    with http.stream("POST", "/images/generations", json=body, headers={"X-Understudy-Image-Stream": "progress"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    plain = client.images.generate(prompt="Gateway", model="gpt-image-1", quality="low", n=2, size="1024x1024")
    _assert_progress_stream(text, 2, (1024, 1024), [item.b64_json for item in plain.data])
    # The header can also ask for OpenAI's framing, and anything else is refused.
    with http.stream("POST", "/images/generations", json=body, headers={"X-Understudy-Image-Stream": "openai"}) as response:
        assert response.read().decode().startswith("event: image_generation.completed\n")
    error = assert_openai_error(http.post("/images/generations", json=body, headers={"X-Understudy-Image-Stream": "chunks"}), 400, code="invalid_value")
    assert "'openai' and 'progress'" in error["message"]


def test_gateway_progress_stream_when_the_server_is_configured_for_it(tmp_path, api_key):
    server = start_server(tmp_path, {"UNDERSTUDY_IMAGE_STREAM_FORMAT": "progress"})
    try:
        headers = {"Authorization": f"Bearer {api_key}"}
        body = {"prompt": "Configured", "model": "gpt-image-1", "stream": True, "quality": "low", "size": "1024x1536", "partial_images": 2}
        with httpx.Client(base_url=f"{server.url}/v1", headers=headers, timeout=60) as http:
            _assert_progress_stream(http.post("/images/generations", json=body).text, 1, (1024, 1536))
            # A request may still ask for OpenAI's framing, which the SDK parses.
            with openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, default_headers={"X-Understudy-Image-Stream": "openai"}) as sdk:
                events = list(sdk.images.generate(**body))
            assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    finally:
        server.stop()


def test_an_unknown_image_stream_format_stops_the_server_from_starting():
    from app.settings import Settings

    with pytest.raises(ValueError, match="image_stream_format"):
        Settings.from_env({"UNDERSTUDY_IMAGE_STREAM_FORMAT": "chunks"})


def test_edit_with_several_images_and_a_mask(client):
    first, second = _png((300, 200)), _png((50, 50), (250, 10, 10, 255))
    mask = Image.new("RGBA", (300, 200), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((50, 50, 150, 150), fill=(0, 0, 0, 0))
    mask_bytes = io.BytesIO()
    mask.save(mask_bytes, "PNG")
    response = client.images.edit(
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")], mask=("m.png", mask_bytes.getvalue(), "image/png"),
        prompt="Add a window", model="gpt-image-1", n=2, size="1536x1024", quality="low",
    )
    body = _json(response)
    assert_matches_schema(body, "ImagesResponse")
    assert len(response.data) == 2 and all(_decode(d.b64_json).size == (1536, 1024) for d in response.data)
    assert response.usage.input_tokens_details.image_tokens > 0
    again = client.images.edit(image=[("a.png", first, "image/png"), ("b.png", second, "image/png")], mask=("m.png", mask_bytes.getvalue(), "image/png"),
                               prompt="Add a window", model="gpt-image-1", n=2, size="1536x1024", quality="low")
    assert [d.b64_json for d in again.data] == [d.b64_json for d in response.data]
    other = client.images.edit(image=("c.png", _png((300, 200), (0, 0, 0, 255)), "image/png"), prompt="Add a window", model="gpt-image-1", size="1536x1024", quality="low")
    assert other.data[0].b64_json not in {d.b64_json for d in response.data}


def test_edit_accepts_jpeg_and_webp_for_gpt_image_and_sizes_auto_by_aspect(client):
    for fmt in ("JPEG", "WEBP"):
        image = _png((400, 200), mode="RGB", fmt=fmt)
        response = client.images.edit(image=("x." + fmt.lower(), image), prompt="Wide", model="gpt-image-1", quality="low")
        assert _decode(response.data[0].b64_json).size == (1536, 1024)


def test_edit_streams_image_edit_events(client):
    events = list(client.images.edit(image=("a.png", _png((200, 200))), prompt="Stream the edit", model="gpt-image-1",
                                     stream=True, partial_images=1, quality="low", output_format="jpeg"))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert_matches_schema(events[0].model_dump(exclude_unset=True), "ImageEditPartialImageEvent")
    assert_matches_schema(events[1].model_dump(exclude_unset=True), "ImageEditCompletedEvent")
    assert _decode(events[1].b64_json).format == "JPEG"


def test_dall_e_2_edit_answers_with_a_url(client):
    response = client.images.edit(image=("a.png", _png((128, 128))), prompt="Paint it", model="dall-e-2", size="256x256")
    assert Image.open(io.BytesIO(httpx.get(response.data[0].url).content)).size == (256, 256)


@pytest.mark.parametrize(
    "files, data, param",
    [
        ({"image": ("a.txt", b"not an image at all", "text/plain")}, {"model": "gpt-image-1"}, "image"),
        ({"image": ("a.png", _png((100, 60)), "image/png")}, {"model": "dall-e-2"}, "image"),
        ({"image": ("a.jpg", _png((64, 64), mode="RGB", fmt="JPEG"), "image/jpeg")}, {"model": "dall-e-2"}, "image"),
        ({"image": ("a.png", _png((64, 64))), "mask": ("m.png", _png((32, 32)))}, {"model": "dall-e-2"}, "mask"),
        ({"image": ("a.png", _png((64, 64))), "mask": ("m.png", _png((64, 64), mode="RGB"))}, {"model": "dall-e-2"}, "mask"),
        ({"image": ("a.png", _png((64, 64)))}, {"model": "dall-e-3"}, "model"),
        ({"image": ("a.png", _png((64, 64)))}, {"model": "gpt-image-1", "n": "many"}, "n"),
        ({"mask": ("m.png", _png((64, 64)))}, {"model": "gpt-image-1"}, "image"),
    ],
)
def test_edit_rejects_bad_uploads(http, files, data, param):
    response = http.post("/images/edits", data={"prompt": "Edit", **data}, files=files)
    assert_openai_error(response, 400, param=param)


def test_variations(client, http):
    response = client.images.create_variation(image=("a.png", _png((80, 80))), n=2, size="512x512", response_format="b64_json")
    assert_matches_schema(_json(response), "ImagesResponse")
    blobs = [d.b64_json for d in response.data]
    assert len(set(blobs)) == 2 and all(_decode(b).size == (512, 512) for b in blobs)
    linked = client.images.create_variation(image=("a.png", _png((80, 80))), size="256x256")
    assert Image.open(io.BytesIO(httpx.get(linked.data[0].url).content)).size == (256, 256)
    assert_openai_error(http.post("/images/variations", files={"image": ("a.jpg", _png(mode="RGB", fmt="JPEG"))}), 400, param="image")
    assert_openai_error(http.post("/images/variations", data={"model": "gpt-image-1"}, files={"image": ("a.png", _png())}), 400, param="model")
    assert_openai_error(http.post("/images/variations", data={"size": "1536x1024"}, files={"image": ("a.png", _png())}), 400, param="size")


def test_openai_errors_reach_the_sdk(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="x", model="dall-e-3", n=3)
    assert caught.value.body["param"] == "n"
