"""/v1/audio: transcriptions and translations (multipart, streamed in), speech (JSON in, audio out)."""
from __future__ import annotations

import typing

from litestar import Controller, Request, Response, post
from litestar.response import Stream
from openai.types.audio import speech_create_params, transcription_create_params, translation_create_params

from app.api.deps import caller
from app.api.images import form_type, read_form
from app.core.sse import SSEvent, sse_response
from app.core.validation import parse_json_params
from app.services.audio import MAX_AUDIO_BYTES, AudioService, too_large

_TranscriptionForm = form_type(transcription_create_params.TranscriptionCreateParamsBase, {"file"}, {"stream": typing.Optional[bool]})
_TranslationForm = form_type(translation_create_params.TranslationCreateParams, {"file"})


def _text(body: str) -> Response:
    return Response(body, media_type="text/plain")


class AudioController(Controller):
    path = "/audio"

    async def _transcribe(self, request: Request, form, task: str) -> dict | Response | Stream:
        platform, tenant = caller(request)
        params, files = await read_form(request, form, {"file": 1}, file_limit=MAX_AUDIO_BYTES, too_large=too_large(),
                                        body_limit=platform.settings.max_audio_body_bytes)
        audio = next((f.data for f in files if f.name == "file"), None)
        kind, result = await AudioService(platform.models).transcribe(tenant, params, audio, task=task)
        if kind == "stream":
            return sse_response(SSEvent(event, event=event["type"]) async for event in result)
        return _text(result) if kind == "text" else result

    @post("/transcriptions", status_code=200, request_max_body_size=None)
    async def transcriptions(self, request: Request) -> dict | Response | Stream:
        return await self._transcribe(request, _TranscriptionForm, "transcribe")

    @post("/translations", status_code=200, request_max_body_size=None)
    async def translations(self, request: Request) -> dict | Response | Stream:
        return await self._transcribe(request, _TranslationForm, "translate")

    @post("/speech", status_code=200)
    async def speech(self, request: Request) -> Response | Stream:
        platform, tenant = caller(request)
        service = AudioService(platform.models)
        params = service.plan_speech(tenant, parse_json_params(speech_create_params.SpeechCreateParams, await request.body()))
        if params.get("stream_format") == "sse":
            return sse_response(SSEvent(event, event=event["type"]) async for event in service.speech_events(params))
        media_type, audio = await service.speech(params)
        return Response(audio, media_type=media_type)
