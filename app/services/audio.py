"""Audio: transcriptions, translations and speech with OpenAI's per-model rules, answered by the
offline audio model (app/inference/providers/offline/audio.py).

A transcript is deterministic (seeded by the audio's bytes), about 2.5 words a second of the file's
real duration, and timed: segments and words cover the duration exactly, so subtitles end where the
audio does. Each response format is built from the same timed words.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import typing
from dataclasses import dataclass

from openai.types.audio import speech_create_params

from app.core.errors import APIError, invalid_request
from app.inference.providers.offline import audio as model
from app.services.images import check_length, check_range, invalid_value, unsupported

MAX_AUDIO_BYTES = 25 * 1024 * 1024
SUPPORTED_FILES = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}
_WHISPER_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_FORMATS = {"whisper-1": _WHISPER_FORMATS, "gpt-4o-transcribe-diarize": ("json", "text", "diarized_json")}
_TOKEN_USAGE = {"gpt-transcribe", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize"}
VOICES = tuple(v for arg in typing.get_args(speech_create_params.Voice) for v in typing.get_args(arg) if isinstance(v, str))
_LANGUAGES = dict(pair.split(":") for pair in (
    "af:afrikaans ar:arabic hy:armenian az:azerbaijani be:belarusian bs:bosnian bg:bulgarian ca:catalan zh:chinese "
    "hr:croatian cs:czech da:danish nl:dutch en:english et:estonian fi:finnish fr:french gl:galician de:german el:greek "
    "he:hebrew hi:hindi hu:hungarian is:icelandic id:indonesian it:italian ja:japanese kn:kannada kk:kazakh ko:korean "
    "lv:latvian lt:lithuanian mk:macedonian ms:malay mr:marathi mi:maori ne:nepali no:norwegian fa:persian pl:polish "
    "pt:portuguese ro:romanian ru:russian sr:serbian sk:slovak sl:slovenian es:spanish sw:swahili sv:swedish tl:tagalog "
    "ta:tamil th:thai tr:turkish uk:ukrainian ur:urdu vi:vietnamese cy:welsh").split())


@dataclass
class Timed:
    word: str
    start: float
    end: float


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}{separator}{millis % 1000:03d}"


class AudioService:
    def __init__(self, models) -> None:
        self._models = models

    def _model(self, tenant: str, model_id: str, kind: str, only: tuple[str, ...] = ()) -> str:
        """A model of the catalogue's `kind` (or one of `only`): 404 for ids nobody knows, 400 for a known
        model of another kind, naming the supported ones."""
        if not (model_id in only if only else self._models.supports(tenant, model_id, kind)):
            self._models.get(tenant, model_id)  # 404 model_not_found for ids nobody knows
            raise invalid_value(model_id, only or self._models.of_kind(kind), "model")
        return model_id

    # -- transcriptions and translations ------------------------------------------------------------
    async def transcribe(self, tenant: str, params: dict, audio: bytes | None, *, task: str = "transcribe") -> tuple[str, object]:
        """("json", body) | ("text", str) | ("stream", async iterator of events), per response_format and stream."""
        model_id = self._model(tenant, params["model"], "transcription", ("whisper-1",) if task == "translate" else ())
        fmt = params.get("response_format") or "json"
        allowed = _FORMATS.get(model_id, ("json", "text"))
        if fmt not in allowed:
            listed = " or ".join(", ".join(f"'{f}'" for f in allowed).rsplit(", ", 1))
            raise unsupported(f"response_format '{fmt}' is not compatible with model '{model_id}'. Use {listed} instead.", "response_format")
        language = params.get("language")
        if task == "translate":
            language = "en"
        elif language is not None and language.lower() not in _LANGUAGES:
            raise invalid_request(f"Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format.",
                                  param="language", code="invalid_value")
        check_range(params.get("temperature"), 0, 1, "temperature", "decimal")
        if not audio:
            raise invalid_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        try:
            seconds = await asyncio.to_thread(model.duration, audio)
        except model.InvalidAudio:
            raise invalid_request(f"Invalid file format. Supported formats: {SUPPORTED_FILES}", param="file", code="invalid_value") from None
        if seconds < 0.1:
            raise invalid_request("Audio file is too short. Minimum audio length is 0.1 seconds.", param="file", code="audio_too_short")
        if seconds > model.MAX_SECONDS:
            raise invalid_request(f"Audio file is too long: {seconds:.0f} seconds, above the offline model's limit of {model.MAX_SECONDS} seconds.",
                                  param="file", code="audio_too_long")
        timed = _timed(model.words(hashlib.sha256(audio).digest(), seconds), seconds)
        text = " ".join(t.word for t in timed)
        usage = self._usage(model_id, params, seconds, len(timed))
        if params.get("stream") and model_id != "whisper-1":
            return "stream", self._events(model_id, fmt, timed, text, usage, params)
        name = _LANGUAGES.get((language or "en").lower(), "english")
        if fmt == "text":
            return "text", text + "\n"
        if fmt in ("srt", "vtt"):
            return "text", _subtitles(timed, fmt)
        if fmt == "verbose_json":
            body = {"task": task, "language": name, "duration": round(seconds, 3), "text": text,
                    "segments": self._segments(timed, params)}
            if "word" in (params.get("timestamp_granularities") or []):
                body["words"] = [{"word": t.word.rstrip("."), "start": t.start, "end": t.end} for t in timed]
            if task == "transcribe":
                body["usage"] = {"type": "duration", "seconds": math.ceil(seconds)}
            return "json", body
        if fmt == "diarized_json":
            return "json", {"task": "transcribe", "duration": round(seconds, 3), "text": text,
                            "segments": _speakers(timed, params), "usage": usage}
        body = {"text": text}
        if task == "transcribe":
            body["usage"] = usage
            if "logprobs" in (params.get("include") or []) and model_id in _TOKEN_USAGE:
                body["logprobs"] = [_logprob(t.word) for t in timed]
        return "json", body

    @staticmethod
    def _usage(model_id: str, params: dict, seconds: float, words: int) -> dict:
        if model_id not in _TOKEN_USAGE:
            return {"type": "duration", "seconds": math.ceil(seconds)}
        audio_tokens, text_tokens = max(1, round(seconds * 10)), len((params.get("prompt") or "").split())
        output = max(1, round(words * 1.3))
        return {"type": "tokens", "input_tokens": audio_tokens + text_tokens, "output_tokens": output,
                "total_tokens": audio_tokens + text_tokens + output,
                "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens}}

    @staticmethod
    def _segments(timed: list[Timed], params: dict) -> list[dict]:
        segments = []
        for index, group in enumerate(_sentences(timed)):
            start, end = group[0].start, group[-1].end
            digest = hashlib.sha256(" ".join(t.word for t in group).encode()).digest()
            segments.append({
                "id": index, "seek": int(start // 30) * 3000, "start": start, "end": end,
                "text": " " + " ".join(t.word for t in group),
                "tokens": [50364 + round(start * 50), *(model.token_id(t.word) for t in group), 50364 + round(end * 50)],
                "temperature": float(params.get("temperature") or 0.0), "avg_logprob": -0.15 - digest[0] / 1024,
                "compression_ratio": 1.2 + digest[1] / 512, "no_speech_prob": digest[2] / 25_600,
            })
        return segments

    async def _events(self, model_id: str, fmt: str, timed: list[Timed], text: str, usage: dict, params: dict):
        logprobs = "logprobs" in (params.get("include") or [])
        if fmt == "diarized_json":
            for segment in _speakers(timed, params):
                yield segment
        else:
            for index, t in enumerate(timed):
                event = {"type": "transcript.text.delta", "delta": t.word if index == 0 else " " + t.word}
                if logprobs:
                    event["logprobs"] = [_logprob(t.word)]
                yield event
                await asyncio.sleep(0)
        done = {"type": "transcript.text.done", "text": text, "usage": usage}
        if logprobs:
            done["logprobs"] = [_logprob(t.word) for t in timed]
        yield done

    # -- speech ------------------------------------------------------------------------------------
    def plan_speech(self, tenant: str, params: dict) -> dict:
        self._model(tenant, params["model"], "speech")
        check_length(params["input"], 4096, "input")
        voice = params["voice"]
        if isinstance(voice, dict):
            if not str(voice.get("id", "")).startswith("voice_"):
                raise invalid_request(f"Invalid value: '{voice.get('id')}'. A custom voice id starts with 'voice_'.", param="voice.id", code="invalid_value")
        elif voice not in VOICES:
            raise invalid_value(voice, VOICES, "voice")
        check_range(params.get("speed"), 0.25, 4.0, "speed", "decimal")
        if params.get("stream_format") == "sse" and params["model"].startswith("tts-1"):
            raise unsupported(f"stream_format 'sse' is not supported for model '{params['model']}'.", "stream_format")
        check_length(params.get("instructions", "x"), 4096, "instructions")
        return params

    async def speech(self, params: dict) -> tuple[str, bytes]:
        fmt = params.get("response_format") or "mp3"
        voice = params["voice"] if isinstance(params["voice"], str) else params["voice"]["id"]

        def render() -> bytes:
            return model.encode(model.waveform(params["input"], voice, float(params.get("speed") or 1.0)), fmt)

        return MEDIA_TYPES[fmt], await asyncio.to_thread(render)

    async def speech_events(self, params: dict):
        """`speech.audio.delta` events carrying base64 chunks of the audio, then `speech.audio.done`."""
        _, audio = await self.speech(params)
        for start in range(0, len(audio), 16 * 1024):
            yield {"type": "speech.audio.delta", "audio": base64.b64encode(audio[start:start + 16 * 1024]).decode()}
        input_tokens = max(1, len(params["input"]) // 4)
        output_tokens = max(1, round(model.speech_seconds(params["input"], float(params.get("speed") or 1.0)) * 20))
        yield {"type": "speech.audio.done", "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                                      "total_tokens": input_tokens + output_tokens}}


def _timed(words: list[str], seconds: float) -> list[Timed]:
    step = seconds / len(words)
    return [Timed(w, round(i * step, 3), round(seconds if i == len(words) - 1 else (i + 0.92) * step, 3)) for i, w in enumerate(words)]


def _sentences(timed: list[Timed]) -> list[list[Timed]]:
    groups, current = [], []
    for t in timed:
        current.append(t)
        if t.word.endswith("."):
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def _subtitles(timed: list[Timed], fmt: str) -> str:
    separator = "," if fmt == "srt" else "."
    cues = []
    for index, group in enumerate(_sentences(timed), 1):
        span = f"{_clock(group[0].start, separator)} --> {_clock(group[-1].end, separator)}"
        text = " ".join(t.word for t in group)
        cues.append(f"{index}\n{span}\n{text}\n" if fmt == "srt" else f"{span}\n{text}\n")
    return ("WEBVTT\n\n" if fmt == "vtt" else "") + "\n".join(cues) + "\n"


def _speakers(timed: list[Timed], params: dict) -> list[dict]:
    names = list(params.get("known_speaker_names") or []) or ["A", "B"]
    return [{"type": "transcript.text.segment", "id": f"seg_{index:03d}", "start": group[0].start, "end": group[-1].end,
             "text": " ".join(t.word for t in group), "speaker": names[index % len(names)]}
            for index, group in enumerate(_sentences(timed))]


def _logprob(word: str) -> dict:
    digest = hashlib.sha256(word.encode()).digest()
    return {"token": word, "logprob": -digest[0] / 2560, "bytes": list(word.encode())}


def too_large(size: int | None = None) -> APIError:
    read = f" ({size} bytes read)" if size else ""
    return APIError(f"Maximum content size limit ({MAX_AUDIO_BYTES}) exceeded{read}.", status_code=413, param="file", code="file_too_large")
