"""Audio: transcriptions, translations and speech with OpenAI's per-model rules, checked here and then
answered by the provider the model routes to: the offline audio model (transcripts in
app/inference/providers/offline/transcripts.py, speech in .../offline/media.py) unless an upstream is
configured for it.

What is checked here is what OpenAI checks whichever model answers (model kinds, formats, languages,
voices, ranges); what needs the audio decoded (its duration) is the offline model's business.
"""
from __future__ import annotations

import typing

from openai.types.audio import speech_create_params

from app.core.errors import APIError, invalid_request
from app.inference.base import MediaAnswer, MediaFile, MediaRequest
from app.inference.providers.offline.transcripts import LANGUAGES, TranscriptJob
from app.services.images import check_length, check_range, invalid_value, unsupported

MAX_AUDIO_BYTES = 25 * 1024 * 1024
_WHISPER_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_FORMATS = {"whisper-1": _WHISPER_FORMATS, "gpt-4o-transcribe-diarize": ("json", "text", "diarized_json")}
VOICES = tuple(v for arg in typing.get_args(speech_create_params.Voice) for v in typing.get_args(arg) if isinstance(v, str))


class AudioService:
    def __init__(self, models, inference, voices=None) -> None:
        self._models = models
        self._voices = voices  # app/services/voices.py: the tenant's custom voices
        self._inference = inference  # app/services/inference.py: routes the checked requests by model

    def _model(self, tenant: str, model_id: str, kind: str, only: tuple[str, ...] = ()) -> str:
        """A model of the catalogue's `kind` (or one of `only`): 404 for ids nobody knows, 400 for a known
        model of another kind, naming the supported ones."""
        if not (model_id in only if only else self._models.supports(tenant, model_id, kind)):
            self._models.get(tenant, model_id)  # 404 model_not_found for ids nobody knows
            raise invalid_value(model_id, only or self._models.of_kind(kind), "model")
        return model_id

    # -- transcriptions and translations ------------------------------------------------------------
    def plan_transcription(self, tenant: str, params: dict, audio: bytes | None, *, task: str = "transcribe") -> TranscriptJob:
        model_id = self._model(tenant, params["model"], "transcription", ("whisper-1",) if task == "translate" else ())
        fmt = params.get("response_format") or "json"
        allowed = _FORMATS.get(model_id, ("json", "text"))
        if fmt not in allowed:
            listed = " or ".join(", ".join(f"'{f}'" for f in allowed).rsplit(", ", 1))
            raise unsupported(f"response_format '{fmt}' is not compatible with model '{model_id}'. Use {listed} instead.", "response_format")
        language = params.get("language")
        if task == "translate":
            language = "en"
        elif language is not None and language.lower() not in LANGUAGES:
            raise invalid_request(f"Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format.",
                                  param="language", code="invalid_value")
        check_range(params.get("temperature"), 0, 1, "temperature", "decimal")
        if not audio:
            raise invalid_request("Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        return TranscriptJob(task, model_id, fmt, language, audio, params)

    async def transcribe(self, tenant: str, params: dict, file: MediaFile | None, *, task: str = "transcribe") -> MediaAnswer:
        """JSON, text or a stream of events, per response_format and stream."""
        job = self.plan_transcription(tenant, params, file.data if file else None, task=task)
        path = "audio/translations" if task == "translate" else "audio/transcriptions"
        stream = bool(params.get("stream")) and job.model != "whisper-1"
        return await self._inference.media(tenant, "transcription", job.model, MediaRequest(path, params, [file], job, stream))

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

    async def speech(self, tenant: str, params: dict) -> MediaAnswer:
        """The audio file, or `speech.audio.delta` events then `speech.audio.done` (stream_format sse)."""
        params = self.plan_speech(tenant, params)
        plan = params
        # A custom voice stored here: its timbre, for the offline model (an upstream knows its own voices).
        if isinstance(params["voice"], dict) and self._voices is not None \
                and self._inference.provider_for(tenant, params["model"]).info.kind == "offline":
            plan = {**params, "voice_pitch": await self._voices.pitch(tenant, params["voice"]["id"])}
        request = MediaRequest("audio/speech", params, plan=plan, stream=params.get("stream_format") == "sse")
        return await self._inference.media(tenant, "speech", params["model"], request)


def too_large(size: int | None = None) -> APIError:
    read = f" ({size} bytes read)" if size else ""
    return APIError(f"Maximum content size limit ({MAX_AUDIO_BYTES}) exceeded{read}.", status_code=413, param="file", code="file_too_large")
