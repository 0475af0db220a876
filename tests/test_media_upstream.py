"""Images and audio route by model name like chat: the official SDK against a live Understudy that sends
gpt-image-1, dall-e-2, gpt-4o-mini-tts and gpt-4o-transcribe to an OpenAI-compatible upstream (a real fake on
loopback), dall-e-3 to an Anthropic one and tts-1 to a Gemini one (which cannot answer them), and every
other model to the offline model.

The upstream must receive the request as OpenAI's API takes it (JSON for generations and speech,
multipart for edits and transcriptions, the provider's key instead of the client's) and the client
must get the upstream's own answer, streams included. OpenAI's rules are still checked first."""
from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import wave

import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, Recorded, _send_json, error_body, upstream_env

KEY = "sk-upstream-media-key"
UPSTREAM_IMAGE = base64.b64encode(b"upstream image bytes").decode()
UPSTREAM_AUDIO = b"ID3 upstream speech bytes"
UPSTREAM_TEXT = "Said upstream."


class MediaUpstream(FakeUpstream):
    """The fake upstream, answering OpenAI's images and audio endpoints too (the rest as FakeUpstream)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/v1/images/", "/v1/audio/")):
            return await super().__call__(scope, receive, send)
        record = await self.record(scope, receive)
        headers = record.headers
        if headers.get("authorization") != f"Bearer {KEY}":
            return await _send_json(send, 401, error_body("openai", 401, "Invalid API key."))
        fault = self._take_fault(record.path)
        if fault is not None:
            return await _send_json(send, fault.status, error_body("openai", fault.status, f"Injected failure {fault.status}."))
        params = form(record)[0] if headers["content-type"].startswith("multipart/") else record.json()
        if params.get("stream") in (True, "true") or params.get("stream_format") == "sse":
            return await _send_sse(send, record.path)
        if record.path == "/v1/audio/speech":
            return await _send(send, 200, UPSTREAM_AUDIO, "audio/mpeg")
        if record.path.startswith("/v1/audio/"):
            if params.get("response_format") == "text":
                return await _send(send, 200, (UPSTREAM_TEXT + "\n").encode(), "text/plain; charset=utf-8")
            return await _send_json(send, 200, {"text": UPSTREAM_TEXT, "usage": {"type": "duration", "seconds": 1}})
        item = {"url": "https://upstream.example/image.png"} if params.get("response_format") == "url" else {"b64_json": UPSTREAM_IMAGE}
        await _send_json(send, 200, {"created": 1, "data": [{**item, "revised_prompt": "upstream's prompt"}]})


async def _send(send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body})


async def _send_sse(send, path: str) -> None:
    if path.startswith("/v1/images/"):
        prefix = "image_generation" if path.endswith("generations") else "image_edit"
        events = [{"type": f"{prefix}.partial_image", "b64_json": UPSTREAM_IMAGE, "partial_image_index": 0},
                  {"type": f"{prefix}.completed", "b64_json": UPSTREAM_IMAGE, "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}]
    elif path == "/v1/audio/speech":
        events = [{"type": "speech.audio.delta", "audio": base64.b64encode(UPSTREAM_AUDIO).decode()},
                  {"type": "speech.audio.done", "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}}]
    else:
        events = [{"type": "transcript.text.delta", "delta": UPSTREAM_TEXT}, {"type": "transcript.text.done", "text": UPSTREAM_TEXT}]
    frames = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    await _send(send, 200, frames, "text/event-stream")


def form(record: Recorded) -> tuple[dict, list[tuple[str, str, str, bytes]]]:
    """A multipart body as (text fields, [(field, filename, content type, bytes)])."""
    head = f"content-type: {record.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + record.body)
    fields, files = {}, []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            files.append((name, part.get_filename(), part.get_content_type(), part.get_payload(decode=True)))
        else:
            fields[name] = part.get_payload(decode=True).decode()
    return fields, files


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 120, 200, 255)).save(out, "PNG")
    return out.getvalue()


def wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x01\x00" * int(seconds * rate))
    return out.getvalue()


@pytest.fixture(scope="module")
def upstream():
    with MediaUpstream(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    providers = [{"name": "up-openai", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY},
                 {"name": "up-anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": KEY},
                 {"name": "up-gemini", "kind": "gemini", "base_url": upstream.url, "api_key": KEY}]
    routes = [{"model": ["gpt-image-1", "dall-e-2", "gpt-4o-mini-tts", "gpt-4o-transcribe"], "provider": "up-openai"},
              {"model": "dall-e-3", "provider": "up-anthropic"}, {"model": "tts-1", "provider": "up-gemini"}]
    srv = start_server(tmp_path_factory.mktemp("media-routing"), upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="0"))
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
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture
def raw(server, key):
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {key}"}, timeout=20) as client:
        yield client


# ---- an OpenAI-compatible upstream gets the request and answers it ----

def test_image_generation_reaches_the_upstream(oa, fake, key):
    params = {"model": "gpt-image-1", "prompt": "A lighthouse at dusk", "size": "1536x1024", "quality": "low", "n": 1}
    result = oa.images.generate(**params)
    [sent] = fake.requests
    assert (sent.method, sent.path, sent.json()) == ("POST", "/v1/images/generations", params)
    assert sent.headers["content-type"] == "application/json" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert key not in json.dumps(sent.headers)
    assert result.data[0].b64_json == UPSTREAM_IMAGE and result.data[0].revised_prompt == "upstream's prompt"


def test_variation_is_sent_as_multipart_and_upstream_links_are_its_own(oa, fake):
    # Not drawn here, so not linked here: the upstream's own URL reaches the client.
    picture = png()
    result = oa.images.create_variation(model="dall-e-2", image=("cat.png", picture, "image/png"), size="256x256", response_format="url")
    [sent] = fake.requests
    assert sent.path == "/v1/images/variations"
    assert form(sent) == ({"model": "dall-e-2", "size": "256x256", "response_format": "url"}, [("image", "cat.png", "image/png", picture)])
    assert result.data[0].url == "https://upstream.example/image.png"


def test_image_stream_is_relayed(oa, fake):
    events = list(oa.images.generate(model="gpt-image-1", prompt="Streamed", stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert events[-1].b64_json == UPSTREAM_IMAGE
    [sent] = fake.requests
    assert sent.json() == {"model": "gpt-image-1", "prompt": "Streamed", "stream": True, "partial_images": 1}
    assert sent.headers["accept"] == "text/event-stream"


def test_image_edit_is_sent_as_multipart(oa, fake):
    picture, mask = png(), png()
    result = oa.images.edit(model="gpt-image-1", image=("room.png", picture, "image/png"), mask=("mask.png", mask, "image/png"),
                            prompt="Add a window", size="1024x1024", n=2)
    [sent] = fake.requests
    assert sent.path == "/v1/images/edits" and sent.headers["authorization"] == f"Bearer {KEY}"
    fields, files = form(sent)
    assert fields == {"model": "gpt-image-1", "prompt": "Add a window", "size": "1024x1024", "n": "2"}
    assert files == [("image", "room.png", "image/png", picture), ("mask", "mask.png", "image/png", mask)]
    assert result.data[0].b64_json == UPSTREAM_IMAGE


def test_several_edit_images_go_as_a_list(oa, fake):
    first, second = png((32, 32)), png((48, 48))
    oa.images.edit(model="gpt-image-1", image=[("a.png", first, "image/png"), ("b.png", second, "image/png")], prompt="Merge")
    _, files = form(fake.requests[-1])
    assert files == [("image[]", "a.png", "image/png", first), ("image[]", "b.png", "image/png", second)]


def test_speech_reaches_the_upstream(oa, fake):
    params = {"model": "gpt-4o-mini-tts", "voice": "coral", "input": "Hello there", "instructions": "Warmly", "response_format": "mp3"}
    audio = oa.audio.speech.create(**params)
    [sent] = fake.requests
    assert (sent.path, sent.json()) == ("/v1/audio/speech", params) and sent.headers["authorization"] == f"Bearer {KEY}"
    assert audio.content == UPSTREAM_AUDIO and audio.response.headers["content-type"] == "audio/mpeg"


def test_speech_stream_is_relayed(raw, fake):
    body = {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "Streamed", "stream_format": "sse"}
    response = raw.post("/v1/audio/speech", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert "event: speech.audio.delta" in response.text and base64.b64encode(UPSTREAM_AUDIO).decode() in response.text
    assert fake.requests[-1].json() == body


def test_transcription_is_sent_as_multipart(oa, fake):
    clip = wav()
    result = oa.audio.transcriptions.create(model="gpt-4o-transcribe", file=("clip.wav", clip, "audio/wav"), language="en",
                                            include=["logprobs"], temperature=0.2)
    [sent] = fake.requests
    assert sent.path == "/v1/audio/transcriptions" and sent.headers["authorization"] == f"Bearer {KEY}"
    fields, files = form(sent)
    assert fields == {"model": "gpt-4o-transcribe", "language": "en", "include[]": "logprobs", "temperature": "0.2"}
    assert files == [("file", "clip.wav", "audio/wav", clip)]
    assert result.text == UPSTREAM_TEXT
    text = oa.audio.transcriptions.create(model="gpt-4o-transcribe", file=("clip.wav", clip, "audio/wav"), response_format="text")
    assert text.strip() == UPSTREAM_TEXT


def test_transcription_stream_is_relayed(oa, fake):
    events = list(oa.audio.transcriptions.create(model="gpt-4o-transcribe", file=("clip.wav", wav(), "audio/wav"), stream=True))
    assert [e.type for e in events] == ["transcript.text.delta", "transcript.text.done"] and events[-1].text == UPSTREAM_TEXT
    assert form(fake.requests[-1])[0]["stream"] == "true"


def test_upstream_errors_reach_the_client(oa, fake):
    fake.fail_next(1, 400, match="/images/")
    with pytest.raises(openai.BadRequestError) as caught:
        oa.images.generate(model="gpt-image-1", prompt="Refused")
    assert caught.value.body["message"] == "Injected failure 400." and len(fake.requests) == 1


# ---- OpenAI's rules come first; other models stay offline; providers that cannot, say so ----

def test_rules_are_checked_before_routing(oa, fake):
    with pytest.raises(openai.BadRequestError) as caught:
        oa.images.generate(model="gpt-image-1", prompt="Too wide", size="1792x1024")
    assert caught.value.body["param"] == "size"
    with pytest.raises(openai.BadRequestError) as caught:
        oa.audio.speech.create(model="gpt-4o-mini-tts", voice="nobody", input="Hi")
    assert caught.value.body["param"] == "voice"
    with pytest.raises(openai.BadRequestError) as caught:
        oa.audio.transcriptions.create(model="gpt-4o-transcribe", file=("clip.wav", wav(), "audio/wav"), response_format="srt")
    assert caught.value.body["param"] == "response_format"
    assert fake.requests == []


def test_unrouted_models_stay_offline(oa, fake):
    gpt = oa.images.generate(model="gpt-image-1.5", prompt="Offline too", quality="low")
    assert gpt.usage is not None and gpt.data[0].b64_json != UPSTREAM_IMAGE
    speech = oa.audio.speech.create(model="tts-1-hd", voice="alloy", input="Hi", response_format="wav")
    assert speech.content.startswith(b"RIFF")
    text = oa.audio.transcriptions.create(model="whisper-1", file=("clip.wav", wav(), "audio/wav"))
    assert text.text and text.text != UPSTREAM_TEXT
    assert fake.requests == []


@pytest.mark.parametrize("call, path", [
    (lambda oa: oa.images.generate(model="dall-e-3", prompt="A fox"), "/v1/images/generations"),
    (lambda oa: oa.audio.speech.create(model="tts-1", voice="alloy", input="Hi"), "/v1/audio/speech"),
])
def test_providers_without_images_or_audio_answer_a_clear_400(oa, fake, call, path):
    with pytest.raises(openai.BadRequestError) as caught:
        call(oa)
    assert_openai_error(caught.value.response, 400)
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["message"].startswith(f"{path} is not supported by this provider (up-")
    assert fake.requests == []
