"""/v1/audio/voices (create, multipart with an audio sample) and /v1/audio/voice_consents (create with a
recording, list, retrieve, update the name, delete)."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post

from app.api.deps import caller
from app.core.errors import invalid_request
from app.core.multipart import FORM_OVERHEAD, bounded, iter_parts
from app.core.pagination import page_params, query_int
from app.core.validation import decode_json_object
from app.services.voices import MAX_SAMPLE_BYTES, check_audio


async def _form(request: Request, file_field: str, fields: tuple[str, ...]) -> tuple[dict, bytes | None]:
    values: dict = {}
    data, unknown = None, None
    async for part in iter_parts(request.headers.get("content-type"), bounded(request, MAX_SAMPLE_BYTES + FORM_OVERHEAD)):
        if part.name == file_field:
            chunks, total = bytearray(), 0
            async for chunk in part:
                total += len(chunk)
                if total > MAX_SAMPLE_BYTES:
                    check_audio(b"\0" * (MAX_SAMPLE_BYTES + 1), file_field)  # the too-large 400
                chunks += chunk
            data = bytes(chunks)
        elif part.name in fields:
            values[part.name] = await part.text()
        else:
            unknown = unknown or part.name
            await part.read()
    if unknown is not None:
        raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
    return values, data


class VoicesController(Controller):
    path = "/audio/voices"

    @post("/", status_code=200, request_max_body_size=None)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        values, sample = await _form(request, "audio_sample", ("name", "consent"))
        return await platform.voices.create_voice(tenant, values.get("name"), values.get("consent"), sample)


class VoiceConsentsController(Controller):
    path = "/audio/voice_consents"

    @post("/", status_code=200, request_max_body_size=None)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        values, recording = await _form(request, "recording", ("name", "language"))
        return await platform.voices.create_consent(tenant, values.get("name"), values.get("language"), recording)

    @get("/")
    async def list_consents(self, request: Request) -> dict:
        platform, tenant = caller(request)
        query = request.query_params
        return await platform.voices.list_consents(tenant, page_params(query_int(query, "limit"), query.get("order"), query.get("after")))

    @get("/{consent_id:str}")
    async def retrieve(self, request: Request, consent_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.voices.get_consent(tenant, consent_id)

    @post("/{consent_id:str}", status_code=200)
    async def update(self, request: Request, consent_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.voices.update_consent(tenant, consent_id, decode_json_object(await request.body()))

    @delete("/{consent_id:str}", status_code=200)
    async def delete_consent(self, request: Request, consent_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.voices.delete_consent(tenant, consent_id)


VOICES_HANDLERS = [VoicesController, VoiceConsentsController]
