"""/v1/audio: transcriptions and translations (multipart, streamed in), speech (JSON in, audio out)."""
from __future__ import annotations

import typing

from litestar import Controller, Request, Response, post
from litestar.response import Stream
from openai.types.audio import speech_create_params, transcription_create_params, translation_create_params

from app.api.deps import caller
from app.api.images import form_type, read_form
from app.api.media import media_response
from app.core.validation import parse_json_params
from app.inference.base import MediaFile
from app.services.audio import MAX_AUDIO_BYTES, too_large

_TranscriptionForm = form_type(transcription_create_params.TranscriptionCreateParamsBase, {"file"}, {"stream": typing.Optional[bool]})
_TranslationForm = form_type(translation_create_params.TranslationCreateParams, {"file"})


class AudioController(Controller):
    path = "/audio"

    async def _transcribe(self, request: Request, form, task: str) -> dict | Response | Stream:
        platform, tenant = caller(request)
        params, files = await read_form(request, form, {"file": 1}, file_limit=MAX_AUDIO_BYTES, too_large=too_large(),
                                        body_limit=platform.settings.max_audio_body_bytes)
        file = next((MediaFile(f.name, f.filename, f.content_type, f.data) for f in files if f.name == "file"), None)
        return media_response(await platform.audio.transcribe(tenant, params, file, task=task))

    @post("/transcriptions", status_code=200, request_max_body_size=None)
    async def transcriptions(self, request: Request) -> dict | Response | Stream:
        return await self._transcribe(request, _TranscriptionForm, "transcribe")

    @post("/translations", status_code=200, request_max_body_size=None)
    async def translations(self, request: Request) -> dict | Response | Stream:
        return await self._transcribe(request, _TranslationForm, "translate")

    @post("/speech", status_code=200)
    async def speech(self, request: Request) -> Response | Stream:
        platform, tenant = caller(request)
        params = parse_json_params(speech_create_params.SpeechCreateParams, await request.body())
        return media_response(await platform.audio.speech(tenant, params))
