"""Custom voices (`/v1/audio/voices`, `voice_…`) and their consent recordings (`/v1/audio/voice_consents`,
`cons_…`), per tenant. Recordings and samples (at most 10 MiB, a recognised audio container) go to the
blob store; rows hold what lists and lookups need.

A voice needs one of the tenant's consents. Its timbre for the offline TTS is a pitch read from the
sample once, at creation: the fundamental estimated from a PCM WAV's zero crossings, or derived from a
hash of the bytes for other containers — so the same sample always speaks the same way. Deleting a
consent keeps the voices already made from it (OpenAI documents no cascade).
"""
from __future__ import annotations

import io
import re
import time
import wave
import hashlib

import numpy as np
from sqlalchemy import delete, insert, select, update

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from storage.blobs import BlobStore
from storage.chatkit_tables import CustomVoice, VoiceConsent
from storage.db import Database

consents = VoiceConsent.__table__
voices = CustomVoice.__table__
MAX_SAMPLE_BYTES = 10 * 1024 * 1024
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")


def consent_body(row) -> dict:
    return {"object": "audio.voice_consent", "id": row.id, "name": row.name, "language": row.language, "created_at": row.created_at}


def voice_body(row) -> dict:
    return {"object": "audio.voice", "id": row.id, "name": row.name, "created_at": row.created_at}


def is_audio(data: bytes) -> bool:
    head = data[:16]
    return (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:3] == b"ID3" or head[:4] in (b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3") \
        or head[4:8] == b"ftyp" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def check_audio(data: bytes | None, param: str) -> bytes:
    if data is None:
        raise invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if len(data) > MAX_SAMPLE_BYTES:
        raise invalid_request(f"The '{param}' file is too large: the maximum size is 10 MiB.", param=param, code="file_too_large")
    if not is_audio(data):
        raise invalid_request(f"Invalid file format for '{param}'. Supported formats: mp3, wav, ogg, aac, flac, webm, mp4.",
                              param=param, code="invalid_file_format")
    return data


def check_name(name, param: str = "name") -> str:
    if name is None:
        raise invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if not isinstance(name, str):
        raise invalid_request(f"Invalid type for '{param}': expected a string.", param=param, code="invalid_type")
    if not name.strip() or len(name) > 256:
        raise invalid_request(f"Invalid '{param}': expected a non-empty string of at most 256 characters.", param=param, code="invalid_value")
    return name


def sample_pitch(data: bytes) -> int:
    """The voice's pitch in Hz (80-300): a PCM WAV's fundamental, else a stable value from its bytes."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() == 2 and w.getnframes() > 0:
                samples = np.frombuffer(w.readframes(min(w.getnframes(), 10 * w.getframerate())), dtype="<i2")
                samples = samples[:: w.getnchannels()].astype(np.float32)
                samples = samples - samples.mean()
                if samples.size > 100 and np.abs(samples).max() > 0:
                    crossings = np.count_nonzero(np.diff(np.signbit(samples)))
                    return int(round(min(300, max(80, crossings / 2 * w.getframerate() / samples.size))))
    except (wave.Error, EOFError, ValueError):
        pass
    return 80 + hashlib.sha256(data).digest()[0] % 221


class VoicesService:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db, self._blobs = db, blobs

    # ---- consents ----
    async def create_consent(self, tenant_id: str, name, language, recording: bytes | None) -> dict:
        check_name(name)
        if language is None:
            raise invalid_request("Missing required parameter: 'language'.", param="language", code="missing_required_parameter")
        if not _LANGUAGE.match(language):
            raise invalid_request(f"Invalid 'language': '{language[:64]}'. Expected a BCP 47 language tag (e.g. 'en-US').",
                                  param="language", code="invalid_value")
        check_audio(recording, "recording")
        consent_id, now = new_id("cons_"), int(time.time())
        key = f"{tenant_id}/voice_consents/{consent_id}"
        await self._blobs.put(key, recording)
        async with self._db.begin() as conn:
            await conn.execute(insert(consents).values(id=consent_id, tenant_id=tenant_id, created_at=now, name=name, language=language,
                                                       bytes=len(recording), blob_key=key))
        return await self.get_consent(tenant_id, consent_id)

    async def _consent(self, tenant_id: str, consent_id: str, param: str | None = None):
        row = await self._db.fetch_one(select(consents).where(consents.c.tenant_id == tenant_id, consents.c.id == consent_id))
        if row is None:
            raise APIError(f"No voice consent found with id '{consent_id}'.", status_code=404, param=param)
        return row

    async def get_consent(self, tenant_id: str, consent_id: str) -> dict:
        return consent_body(await self._consent(tenant_id, consent_id))

    async def list_consents(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, consents, page, {"tenant_id": tenant_id})
        return list_body([consent_body(r) for r in rows], has_more)

    async def update_consent(self, tenant_id: str, consent_id: str, body: dict) -> dict:
        await self._consent(tenant_id, consent_id)
        unknown = next((k for k in body if k != "name"), None)
        if unknown is not None:
            raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
        name = check_name(body.get("name"))
        async with self._db.begin() as conn:
            await conn.execute(update(consents).where(consents.c.tenant_id == tenant_id, consents.c.id == consent_id).values(name=name))
        return await self.get_consent(tenant_id, consent_id)

    async def delete_consent(self, tenant_id: str, consent_id: str) -> dict:
        row = await self._consent(tenant_id, consent_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(consents).where(consents.c.tenant_id == tenant_id, consents.c.id == consent_id))
        await self._blobs.delete(row.blob_key)
        return {"id": consent_id, "object": "audio.voice_consent", "deleted": True}

    # ---- voices ----
    async def create_voice(self, tenant_id: str, name, consent, sample: bytes | None) -> dict:
        check_name(name)
        if consent is None:
            raise invalid_request("Missing required parameter: 'consent'.", param="consent", code="missing_required_parameter")
        check_audio(sample, "audio_sample")
        await self._consent(tenant_id, consent, param="consent")
        voice_id, now = new_id("voice_"), int(time.time())
        key = f"{tenant_id}/voices/{voice_id}"
        await self._blobs.put(key, sample)
        row = dict(id=voice_id, tenant_id=tenant_id, created_at=now, name=name, consent_id=consent, pitch=sample_pitch(sample),
                   bytes=len(sample), blob_key=key)
        async with self._db.begin() as conn:
            await conn.execute(insert(voices).values(**row))
        return {"object": "audio.voice", "id": voice_id, "name": name, "created_at": now}

    async def pitch(self, tenant_id: str, voice_id: str, param: str = "voice.id") -> int:
        """The custom voice's pitch for the offline TTS; a 400 naming `param` for an id the tenant lacks."""
        row = await self._db.fetch_one(select(voices.c.pitch).where(voices.c.tenant_id == tenant_id, voices.c.id == voice_id))
        if row is None:
            raise invalid_request(f"Voice '{voice_id}' not found.", param=param, code="voice_not_found")
        return row.pitch
