"""The offline audio model's transcripts and translations, in every response format.

A transcript is deterministic (seeded by the audio's bytes), about 2.5 words a second of the file's
real duration, and timed: segments and words cover the duration exactly, so subtitles end where the
audio does. Each response format is built from the same timed words. The request's rules (model,
format, language) were checked by the audio service before routing; what is checked here needs the
audio decoded, which only this model does.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass

from app.core.errors import invalid_request
from app.inference.base import MediaAnswer
from app.inference.providers.offline import audio as model

SUPPORTED_FILES = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
TOKEN_USAGE = {"gpt-transcribe", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize"}
LANGUAGES = dict(pair.split(":") for pair in (
    "af:afrikaans ar:arabic hy:armenian az:azerbaijani be:belarusian bs:bosnian bg:bulgarian ca:catalan zh:chinese "
    "hr:croatian cs:czech da:danish nl:dutch en:english et:estonian fi:finnish fr:french gl:galician de:german el:greek "
    "he:hebrew hi:hindi hu:hungarian is:icelandic id:indonesian it:italian ja:japanese kn:kannada kk:kazakh ko:korean "
    "lv:latvian lt:lithuanian mk:macedonian ms:malay mr:marathi mi:maori ne:nepali no:norwegian fa:persian pl:polish "
    "pt:portuguese ro:romanian ru:russian sr:serbian sk:slovak sl:slovenian es:spanish sw:swahili sv:swedish tl:tagalog "
    "ta:tamil th:thai tr:turkish uk:ukrainian ur:urdu vi:vietnamese cy:welsh").split())


@dataclass
class TranscriptJob:
    """A checked transcription or translation request."""

    task: str  # "transcribe" | "translate"
    model: str
    fmt: str
    language: str | None
    audio: bytes
    params: dict


@dataclass
class Timed:
    word: str
    start: float
    end: float


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}{separator}{millis % 1000:03d}"


async def answer(job: TranscriptJob) -> MediaAnswer:
    """JSON, text (text, srt, vtt) or a stream of events, per response_format and stream."""
    audio, params, model_id, fmt, task = job.audio, job.params, job.model, job.fmt, job.task
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
    usage = _usage(model_id, params, seconds, len(timed))
    if params.get("stream") and model_id != "whisper-1":
        return MediaAnswer("events", _events(fmt, timed, text, usage, params))
    name = LANGUAGES.get((job.language or "en").lower(), "english")
    if fmt == "text":
        return MediaAnswer("content", text + "\n", "text/plain")
    if fmt in ("srt", "vtt"):
        return MediaAnswer("content", _subtitles(timed, fmt), "text/plain")
    if fmt == "verbose_json":
        body = {"task": task, "language": name, "duration": round(seconds, 3), "text": text, "segments": _segments(timed, params)}
        if "word" in (params.get("timestamp_granularities") or []):
            body["words"] = [{"word": t.word.rstrip("."), "start": t.start, "end": t.end} for t in timed]
        if task == "transcribe":
            body["usage"] = {"type": "duration", "seconds": math.ceil(seconds)}
        return MediaAnswer("json", body)
    if fmt == "diarized_json":
        return MediaAnswer("json", {"task": "transcribe", "duration": round(seconds, 3), "text": text,
                                    "segments": _speakers(timed, params), "usage": usage})
    body = {"text": text}
    if task == "transcribe":
        body["usage"] = usage
        if "logprobs" in (params.get("include") or []) and model_id in TOKEN_USAGE:
            body["logprobs"] = [_logprob(t.word) for t in timed]
    return MediaAnswer("json", body)


def _usage(model_id: str, params: dict, seconds: float, words: int) -> dict:
    if model_id not in TOKEN_USAGE:
        return {"type": "duration", "seconds": math.ceil(seconds)}
    audio_tokens, text_tokens = max(1, round(seconds * 10)), len((params.get("prompt") or "").split())
    output = max(1, round(words * 1.3))
    return {"type": "tokens", "input_tokens": audio_tokens + text_tokens, "output_tokens": output,
            "total_tokens": audio_tokens + text_tokens + output,
            "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens}}


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


async def _events(fmt: str, timed: list[Timed], text: str, usage: dict, params: dict):
    logprobs = "logprobs" in (params.get("include") or [])
    if fmt == "diarized_json":
        for segment in _speakers(timed, params):
            yield segment["type"], segment
    else:
        for index, t in enumerate(timed):
            event = {"type": "transcript.text.delta", "delta": t.word if index == 0 else " " + t.word}
            if logprobs:
                event["logprobs"] = [_logprob(t.word)]
            yield event["type"], event
            await asyncio.sleep(0)
    done = {"type": "transcript.text.done", "text": text, "usage": usage}
    if logprobs:
        done["logprobs"] = [_logprob(t.word) for t in timed]
    yield done["type"], done


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
