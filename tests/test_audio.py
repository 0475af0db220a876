"""Audio API against the live server with the official SDK: transcripts timed to the real duration of
the uploaded container in every response format, translations, and speech that decodes."""
from __future__ import annotations

import base64
import io
import json
import math
import struct
import wave

import mutagen
import mutagen.aac
import numpy as np
import openai
import pytest
import soundfile

from tests.conftest import assert_openai_error
from tests.support.openapi import assert_matches_schema

# The SDK marks whisper-era models deprecated; they are still part of the API.
pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")


def _tone(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)


def _wav(seconds: float, rate: int = 16_000, seed: int = 0) -> bytes:
    samples = (_tone(seconds, rate) * 32767).astype("<i2")
    samples[:1] = seed  # a different first sample: different bytes, same duration
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def _encoded(seconds: float, container: str, subtype: str, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, _tone(seconds, rate), rate, format=container, subtype=subtype)
    return out.getvalue()


def _ebml(element: int, payload: bytes) -> bytes:
    size = len(payload)
    return element.to_bytes((element.bit_length() + 7) // 8, "big") + bytes([0x01]) + size.to_bytes(7, "big") + payload


def _webm(seconds: float, *, declared: bool) -> bytes:
    """A minimal WebM: header, Segment with Info (scale, maybe Duration) and one Cluster of blocks every 20 ms."""
    info = _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big"))
    if declared:
        info += _ebml(0x4489, struct.pack(">d", seconds * 1000))
    blocks = b"".join(_ebml(0xA3, b"\x81" + struct.pack(">h", ms) + b"\x80" + b"\0" * 8) for ms in range(0, int(seconds * 1000) + 1, 20))
    cluster = _ebml(0x1F43B675, _ebml(0xE7, b"\x00") + blocks)
    return _ebml(0x1A45DFA3, _ebml(0x4282, b"webm")) + _ebml(0x18538067, _ebml(0x1549A966, info) + cluster)


def _cue_end(subtitles: str, separator: str) -> float:
    last = [line for line in subtitles.splitlines() if "-->" in line][-1].split(" --> ")[1]
    h, m, s = last.replace(separator, ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@pytest.mark.parametrize("seconds", [3.0, 7.25])
def test_whisper_formats_cover_the_wav_duration(client, seconds):
    audio = ("clip.wav", _wav(seconds))
    as_json = client.audio.transcriptions.create(file=audio, model="whisper-1")
    body = as_json.model_dump(exclude_unset=True)
    assert_matches_schema(body, "CreateTranscriptionResponseJson")
    assert len(as_json.text.split()) == round(seconds * 2.5) and body["usage"] == {"type": "duration", "seconds": math.ceil(seconds)}
    text = client.audio.transcriptions.create(file=audio, model="whisper-1", response_format="text")
    assert text == as_json.text + "\n"
    srt = client.audio.transcriptions.create(file=audio, model="whisper-1", response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> ") and _cue_end(srt, ",") == pytest.approx(seconds, abs=0.001)
    vtt = client.audio.transcriptions.create(file=audio, model="whisper-1", response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ") and _cue_end(vtt, ".") == pytest.approx(seconds, abs=0.001)
    verbose = client.audio.transcriptions.create(file=audio, model="whisper-1", response_format="verbose_json", timestamp_granularities=["word", "segment"])
    body = verbose.model_dump(exclude_unset=True)
    assert_matches_schema(body, "CreateTranscriptionResponseVerboseJson")
    assert verbose.duration == pytest.approx(seconds) and verbose.language == "english" and body["task"] == "transcribe"
    assert verbose.segments[0].start == 0 and verbose.segments[-1].end == pytest.approx(seconds)
    assert " ".join(s.text.strip() for s in verbose.segments) == verbose.text == as_json.text
    assert len(verbose.words) == len(as_json.text.split()) and verbose.words[-1].end == pytest.approx(seconds)
    assert all(a.end <= b.start for a, b in zip(verbose.words, verbose.words[1:]))


def test_transcripts_are_deterministic_per_audio(client):
    first = client.audio.transcriptions.create(file=("a.wav", _wav(4)), model="whisper-1").text
    again = client.audio.transcriptions.create(file=("b.wav", _wav(4)), model="whisper-1").text
    other = client.audio.transcriptions.create(file=("a.wav", _wav(4, seed=7)), model="whisper-1").text
    assert first == again and first != other


@pytest.mark.parametrize(
    "name, data, seconds",
    [
        ("a.mp3", _encoded(2.5, "MP3", "MPEG_LAYER_III", 24_000), 2.5),
        ("a.ogg", _encoded(2.0, "OGG", "OPUS"), 2.0),
        ("a.ogg", _encoded(1.5, "OGG", "VORBIS"), 1.5),
        ("a.flac", _encoded(3.5, "FLAC", "PCM_16"), 3.5),
        ("a.wav", _encoded(2.0, "WAV", "FLOAT"), 2.0),
        ("a.webm", _webm(4.0, declared=True), 4.0),
        ("a.webm", _webm(3.0, declared=False), 3.0),
    ],
)
def test_other_containers_report_their_duration(client, name, data, seconds):
    verbose = client.audio.transcriptions.create(file=(name, data), model="whisper-1", response_format="verbose_json")
    assert verbose.duration == pytest.approx(seconds, abs=0.06)


@pytest.mark.parametrize(
    "data, message",
    [(b"this is plainly not audio", "Invalid file format"), (b"RIFF\0\0\0\0WAVEfmt ", "Invalid file format"), (_wav(0.05), "too short")],
)
def test_unreadable_or_tiny_audio_is_a_400(http, data, message):
    response = http.post("/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("a.wav", data)})
    assert message in assert_openai_error(response, 400, param="file")["message"]


@pytest.mark.parametrize(
    "data, param, status",
    [
        ({"model": "gpt-4o-transcribe", "response_format": "srt"}, "response_format", 400),
        ({"model": "whisper-1", "response_format": "diarized_json"}, "response_format", 400),
        ({"model": "whisper-1", "response_format": "xml"}, "response_format", 400),
        ({"model": "whisper-1", "language": "klingon"}, "language", 400),
        ({"model": "whisper-1", "temperature": "hot"}, "temperature", 400),
        ({"model": "tts-1"}, "model", 400),
        ({"model": "no-such-model"}, "model", 404),
        ({"model": "whisper-1", "colour": "red"}, "colour", 400),
        ({}, "model", 400),
    ],
)
def test_transcription_parameter_errors(http, data, param, status):
    assert_openai_error(http.post("/audio/transcriptions", data=data, files={"file": ("a.wav", _wav(1))}), status, param=param)


def test_gpt_4o_transcribe_json_usage_logprobs_and_text(client):
    audio = ("a.wav", _wav(6))
    result = client.audio.transcriptions.create(file=audio, model="gpt-4o-transcribe", include=["logprobs"])
    body = result.model_dump(exclude_unset=True)
    assert_matches_schema(body, "CreateTranscriptionResponseJson")
    assert body["usage"]["type"] == "tokens" and body["usage"]["input_token_details"]["audio_tokens"] == 60
    assert len(result.logprobs) == len(result.text.split())
    assert client.audio.transcriptions.create(file=audio, model="gpt-4o-mini-transcribe", response_format="text") == result.text + "\n"


def test_gpt_4o_transcribe_streams_deltas_then_done(client, http):
    stream = client.audio.transcriptions.create(file=("a.wav", _wav(3)), model="gpt-4o-transcribe", stream=True)
    events = list(stream)
    assert {e.type for e in events[:-1]} == {"transcript.text.delta"} and events[-1].type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    assert_matches_schema(events[0].model_dump(exclude_unset=True), "TranscriptTextDeltaEvent")
    assert_matches_schema(events[-1].model_dump(exclude_unset=True), "TranscriptTextDoneEvent")
    ignored = http.post("/audio/transcriptions", data={"model": "whisper-1", "stream": "true"}, files={"file": ("a.wav", _wav(3))})
    assert ignored.headers["content-type"].startswith("application/json") and ignored.json()["text"]  # OpenAI ignores it for whisper-1
    diarized = client.audio.transcriptions.create(file=("a.wav", _wav(9)), model="gpt-4o-transcribe-diarize", response_format="diarized_json")
    body = diarized.model_dump(exclude_unset=True)
    assert_matches_schema(body, "CreateTranscriptionResponseDiarizedJson")
    assert {s["speaker"] for s in body["segments"]} <= {"A", "B"} and body["segments"][-1]["end"] == pytest.approx(9)


def test_translations(client, http):
    text = client.audio.translations.create(file=("a.mp3", _encoded(4, "MP3", "MPEG_LAYER_III", 24_000)), model="whisper-1", response_format="text")
    assert len(text.split()) == 10
    verbose = client.audio.translations.create(file=("a.wav", _wav(5)), model="whisper-1", response_format="verbose_json")
    body = verbose.model_dump(exclude_unset=True)
    assert_matches_schema(body, "CreateTranslationResponseVerboseJson")
    assert body["task"] == "translate" and body["language"] == "english" and body["duration"] == 5
    assert_matches_schema(client.audio.translations.create(file=("a.wav", _wav(2)), model="whisper-1").model_dump(), "CreateTranslationResponseJson")
    assert_openai_error(http.post("/audio/translations", data={"model": "gpt-4o-transcribe"}, files={"file": ("a.wav", _wav(1))}), 400, param="model")
    assert_openai_error(http.post("/audio/translations", data={"model": "whisper-1", "language": "fr"}, files={"file": ("a.wav", _wav(1))}), 400, param="language")


INPUT = "The quick brown fox jumps over the lazy dog, twice: once at dawn and once at dusk."  # 84 characters


def _speech(client, **kwargs) -> tuple[str, bytes]:
    params = {"model": "tts-1", "voice": "alloy", "input": INPUT, **kwargs}
    with client.audio.speech.with_streaming_response.create(**params) as response:
        return response.headers["content-type"], b"".join(response.iter_bytes())


def test_speech_wav_and_pcm_have_the_expected_length(client):
    media_type, data = _speech(client, response_format="wav")
    assert media_type == "audio/wav"
    with wave.open(io.BytesIO(data)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (24_000, 1, 2)
        assert reader.getnframes() / 24_000 == pytest.approx(len(INPUT) / 15, abs=0.01)
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    assert 0 < np.abs(samples).max() < 8000  # quiet, but not silence
    media_type, pcm = _speech(client, response_format="pcm", speed=2.0)
    assert media_type == "audio/pcm" and len(pcm) == 2 * int(len(INPUT) / 30 * 24_000)


@pytest.mark.parametrize("fmt, media_type", [("mp3", "audio/mpeg"), ("opus", "audio/opus"), ("flac", "audio/flac"), ("aac", "audio/aac")])
def test_speech_compressed_formats_decode_to_the_expected_length(client, fmt, media_type):
    got_type, data = _speech(client, response_format=fmt)
    assert got_type == media_type
    info = mutagen.aac.AAC(io.BytesIO(data)).info if fmt == "aac" else mutagen.File(io.BytesIO(data)).info
    assert info.length == pytest.approx(len(INPUT) / 15, abs=0.1)
    if fmt in ("flac", "opus"):
        decoded, rate = soundfile.read(io.BytesIO(data))
        assert len(decoded) / rate == pytest.approx(len(INPUT) / 15, abs=0.05)


def test_speech_defaults_to_mp3_and_is_deterministic(client):
    first = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input="Hello there.", instructions="Cheerful")
    again = client.audio.speech.create(model="gpt-4o-mini-tts", voice="coral", input="Hello there.")
    other = client.audio.speech.create(model="gpt-4o-mini-tts", voice="onyx", input="Hello there.")
    assert first.response.headers["content-type"] == "audio/mpeg" and mutagen.File(io.BytesIO(first.content)) is not None
    assert first.content == again.content != other.content


def test_speech_sse_stream(http):
    with http.stream("POST", "/audio/speech", json={"model": "gpt-4o-mini-tts", "voice": "nova", "input": INPUT, "response_format": "wav", "stream_format": "sse"}) as response:
        frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    events = [json.loads(frame) for frame in frames]
    assert [e["type"] for e in events[-1:]] == ["speech.audio.done"] and all(e["type"] == "speech.audio.delta" for e in events[:-1])
    for event in events:
        assert_matches_schema(event, "SpeechAudioDeltaEvent" if event["type"] == "speech.audio.delta" else "SpeechAudioDoneEvent")
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    with wave.open(io.BytesIO(audio)) as reader:
        assert reader.getnframes() / 24_000 == pytest.approx(len(INPUT) / 15, abs=0.01)


@pytest.mark.parametrize(
    "params, param, status",
    [
        ({"voice": "bob"}, "voice", 400),
        ({"input": "x" * 4097}, "input", 400),
        ({"input": ""}, "input", 400),
        ({"speed": 4.5}, "speed", 400),
        ({"speed": 0.1}, "speed", 400),
        ({"response_format": "ogg"}, "response_format", 400),
        ({"stream_format": "sse"}, "stream_format", 400),
        ({"model": "whisper-1"}, "model", 400),
        ({"model": "no-such-model"}, "model", 404),
        ({"voice": {"id": "bob"}}, "voice.id", 400),
    ],
)
def test_speech_errors(http, params, param, status):
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello", **params}
    assert_openai_error(http.post("/audio/speech", json=body), status, param=param)


def test_speech_error_reaches_the_sdk(client):
    with pytest.raises(openai.BadRequestError):
        client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 5000)


def test_audio_over_25_mb_is_a_413(client):
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(file=("big.wav", bytes(25 * 1024 * 1024 + 1)), model="whisper-1")
    assert "Maximum content size limit (26214400) exceeded" in assert_openai_error(caught.value.response, 413, param="file")["message"]
