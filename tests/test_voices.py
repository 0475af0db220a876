"""Custom voices and voice consents through the official SDK: the consent lifecycle and pagination,
a voice made from a sample and a consent, the voice in `audio/speech` (a timbre from its sample),
tenancy and bad input."""
from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import openai
import pytest

from app.services.voices import sample_pitch
from tests.conftest import assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema


def tone(hz: float, seconds: float = 0.5, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((8000 * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes())
    return out.getvalue()


def test_sample_pitch_follows_the_recording():
    assert abs(sample_pitch(tone(120)) - 120) <= 3 and abs(sample_pitch(tone(220)) - 220) <= 3
    assert sample_pitch(b"ID3" + b"\x01" * 100) == sample_pitch(b"ID3" + b"\x01" * 100)


def test_consent_lifecycle_and_pagination(client, server, api_key):
    consents = client.audio.voice_consents
    made = [consents.create(name=f"Person {i}", language="en-US", recording=("consent.wav", tone(150))) for i in range(3)]
    assert all(c.id.startswith("cons_") and c.object == "audio.voice_consent" for c in made)
    headers = {"Authorization": f"Bearer {api_key}"}
    raw = httpx.get(f"{server.url}/v1/audio/voice_consents/{made[0].id}", headers=headers).json()
    assert_matches_schema(raw, "VoiceConsentResource")
    assert raw == {"object": "audio.voice_consent", "id": made[0].id, "name": "Person 0", "language": "en-US", "created_at": made[0].created_at}
    listed = httpx.get(f"{server.url}/v1/audio/voice_consents", params={"limit": 2}, headers=headers).json()
    assert_matches_schema(listed, "VoiceConsentListResource")
    assert [c["id"] for c in listed["data"]] == [made[2].id, made[1].id] and listed["has_more"]
    assert [c.id for c in consents.list(limit=2, after=made[1].id).data] == [made[0].id]
    assert [c.id for c in consents.list()] == [c.id for c in reversed(made)]
    assert consents.update(made[1].id, name="Renamed").name == "Renamed"
    assert consents.retrieve(made[1].id).name == "Renamed"
    deleted = httpx.delete(f"{server.url}/v1/audio/voice_consents/{made[2].id}", headers=headers).json()
    assert_matches_schema(deleted, "VoiceConsentDeletedResource")
    assert deleted == {"id": made[2].id, "object": "audio.voice_consent", "deleted": True}
    assert consents.delete(made[1].id).deleted
    with pytest.raises(openai.NotFoundError):
        consents.retrieve(made[2].id)
    with pytest.raises(openai.NotFoundError):
        consents.delete(made[2].id)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        assert other.audio.voice_consents.list().data == []
        with pytest.raises(openai.NotFoundError):
            other.audio.voice_consents.retrieve(made[0].id)
        with pytest.raises(openai.NotFoundError):  # another tenant's consent
            other.audio.voices.create(name="Stolen", consent=made[0].id, audio_sample=("s.wav", tone(150)))


def test_custom_voice_speaks_with_its_samples_timbre(client, server, api_key):
    consent = client.audio.voice_consents.create(name="Jo", language="en", recording=("consent.wav", tone(150)))
    low = client.audio.voices.create(name="Low", consent=consent.id, audio_sample=("low.wav", tone(110)))
    high = client.audio.voices.create(name="High", consent=consent.id, audio_sample=("high.wav", tone(260)))
    raw = httpx.post(f"{server.url}/v1/audio/voices", data={"name": "Raw", "consent": consent.id},
                     files={"audio_sample": ("s.wav", tone(180))}, headers={"Authorization": f"Bearer {api_key}"}).json()
    assert_matches_schema(raw, "VoiceResource")
    assert low.id.startswith("voice_") and low.object == "audio.voice" and low.name == "Low"

    def speak(voice, c=client) -> bytes:
        return c.audio.speech.create(model="gpt-4o-mini-tts", voice=voice, input="Hello there", response_format="wav").read()

    first, again, other = speak({"id": low.id}), speak({"id": low.id}), speak({"id": high.id})
    assert first == again and first != other and first != speak("alloy")
    with pytest.raises(openai.BadRequestError) as error:
        speak({"id": "voice_nope"})
    assert error.value.body["param"] == "voice.id"
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as stranger:
        with pytest.raises(openai.BadRequestError):
            speak({"id": low.id}, stranger)


def test_bad_input(client, server, api_key):
    consent = client.audio.voice_consents.create(name="Jo", language="en-US", recording=("consent.wav", tone(150)))
    headers = {"Authorization": f"Bearer {api_key}"}
    consents, voices = f"{server.url}/v1/audio/voice_consents", f"{server.url}/v1/audio/voices"
    wav = {"recording": ("c.wav", tone(150))}
    assert_openai_error(httpx.post(consents, data={"language": "en"}, files=wav, headers=headers), 400, param="name")
    assert_openai_error(httpx.post(consents, data={"name": "A"}, files=wav, headers=headers), 400, param="language")
    assert_openai_error(httpx.post(consents, data={"name": "A", "language": "english please"}, files=wav, headers=headers), 400, param="language")
    assert_openai_error(httpx.post(consents, files={"name": (None, "A"), "language": (None, "en")}, headers=headers), 400, param="recording")
    assert_openai_error(httpx.post(consents, data={"name": "A", "language": "en"}, files={"recording": ("c.txt", b"not audio")},
                                   headers=headers), 400, param="recording", code="invalid_file_format")
    assert_openai_error(httpx.post(consents, data={"name": "A", "language": "en", "extra": "1"}, files=wav, headers=headers), 400, param="extra")
    sample = {"audio_sample": ("s.wav", tone(150))}
    assert_openai_error(httpx.post(voices, data={"name": "V"}, files=sample, headers=headers), 400, param="consent")
    assert_openai_error(httpx.post(voices, data={"name": "V", "consent": "cons_nope"}, files=sample, headers=headers), 404, param="consent")
    assert_openai_error(httpx.post(voices, files={"name": (None, "V"), "consent": (None, consent.id)}, headers=headers), 400, param="audio_sample")
    big = {"audio_sample": ("s.wav", b"RIFF" + b"\0" * (10 * 1024 * 1024 + 10))}
    assert_openai_error(httpx.post(voices, data={"name": "V", "consent": consent.id}, files=big, headers=headers), 400, param="audio_sample")
    assert_openai_error(httpx.post(f"{consents}/{consent.id}", json={}, headers=headers), 400, param="name")
    assert_openai_error(httpx.post(f"{consents}/{consent.id}", json={"name": 3}, headers=headers), 400, param="name")
    assert_openai_error(httpx.get(consents, params={"limit": 101}, headers=headers), 400, param="limit")


def test_realtime_sessions_speak_with_a_custom_voice(client, server, api_key):
    import asyncio
    import base64

    consent = client.audio.voice_consents.create(name="Jo", language="en", recording=("consent.wav", tone(150)))
    voice = client.audio.voices.create(name="Deep", consent=consent.id, audio_sample=("s.wav", tone(100)))

    async def spoken(conn, chosen) -> bytes:
        await conn.response.create(response={"conversation": "none", "output_modalities": ["audio"], "audio": {"output": {"voice": chosen}},
                                             "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hi"}]}]})
        pcm = b""
        async for event in conn:
            if event.type == "response.output_audio.delta":
                pcm += base64.b64decode(event.delta)
            elif event.type == "response.done":
                assert event.response.status == "completed", event.response
                return pcm
            elif event.type == "error":
                raise AssertionError(event.error)
        raise AssertionError("socket closed")

    async def main():
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0).realtime.connect(model="gpt-realtime") as conn:
            await conn.recv()
            custom, again, builtin = await spoken(conn, {"id": voice.id}), await spoken(conn, {"id": voice.id}), await spoken(conn, "alloy")
            assert custom and custom == again and custom != builtin

    asyncio.run(asyncio.wait_for(main(), 60))
