"""Videos (`/v1/videos`): asynchronous generation jobs, their downloadable assets, and characters.

A video's truth is its row: `status` queued → in_progress → completed | failed, `progress` 0 → 100. The
`generate_video` job advances progress in steps (each written with a compare-and-set on the status, so a
video deleted meanwhile stops the job), renders the clip with the offline model off the event loop,
stores the MP4, thumbnail and spritesheet, and completes the row in one guarded write. A restarted job
continues from the stored progress; rendering is deterministic and the blobs are overwritten whole, so
running it twice changes nothing. Remixes, edits and extensions are new videos whose job starts from a
source video (its thumbnail is the new clip's backdrop).
"""
from __future__ import annotations

import asyncio
import time

from sqlalchemy import delete, insert, select

from app.core.errors import invalid_request, not_found
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from app.inference.base import MediaFile, MediaRequest
from app.inference.providers.offline import video as model
from app.services.videos import rules
from storage.blobs import BlobNotFound, BlobStore
from storage.models import Video, VideoCharacter
from storage.status import guarded_params, guarded_update

videos = Video.__table__
characters = VideoCharacter.__table__
_SAVE_IF = guarded_update(videos, ("data",))

TERMINAL = ("completed", "failed")
ASSET_TTL_SECONDS = 3600
PROGRESS_STEP = 10
VARIANTS = {"video": ("video.mp4", "video/mp4"), "thumbnail": ("thumbnail.webp", "image/webp"), "spritesheet": ("spritesheet.webp", "image/webp")}
_PRIVATE = "_job"  # what the job needs and the wire object does not show


def wire(video: dict) -> dict:
    return {k: v for k, v in video.items() if k != _PRIVATE}


def _key(tenant_id: str, video_id: str, name: str) -> str:
    return f"{tenant_id}/videos/{video_id}/{name}"


class VideosService:
    def __init__(self, db, blobs: BlobStore, files, queue, inference, *, step_seconds: float, poll_seconds: float,
                 max_reference_bytes: int, max_clip_bytes: int) -> None:
        """`inference` (app/services/inference.py) says which provider a video's model routes to."""
        self._db, self._blobs, self._files, self._queue, self._inference = db, blobs, files, queue, inference
        self._poll_seconds = poll_seconds
        self._step_seconds, self.max_reference_bytes, self.max_clip_bytes = step_seconds, max_reference_bytes, max_clip_bytes

    # ---- rows ----
    async def _row(self, video_id: str, tenant_id: str | None = None):
        row = await self._db.fetch_one(select(videos.c.data, videos.c.tenant_id, videos.c.status).where(videos.c.id == video_id))
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise not_found("Video", video_id, param="video_id")
        return row

    async def _save(self, video: dict, expect: tuple[str, ...]) -> bool:
        return await self._db.write([(_SAVE_IF, guarded_params(video["id"], {"status": video["status"], "data": video}, expect))], guard=True)

    async def _start(self, tenant_id: str, *, model_name: str, prompt: str, size: str, seconds: str, job: dict,
                     remixed_from: str | None = None, reference: bytes | None = None) -> dict:
        provider = self._inference.provider_for(tenant_id, model_name)
        if provider.info.kind in ("anthropic", "gemini"):
            raise invalid_request(f"The model '{model_name}' is routed to the provider '{provider.info.name}' ({provider.info.kind}), "
                                  "which has no video API.", param="model", code="unsupported_model")
        now = int(time.time())
        video = {
            "id": new_id("video_"), "object": "video", "model": model_name, "status": "queued", "progress": 0, "created_at": now,
            "completed_at": None, "expires_at": None, "prompt": prompt, "size": size, "seconds": seconds,
            "remixed_from_video_id": remixed_from, "error": None, _PRIVATE: job,
        }
        if reference is not None:
            await self._blobs.put(_key(tenant_id, video["id"], "reference"), reference)
            job["reference"] = True
        async with self._db.begin() as conn:
            await conn.execute(insert(videos).values(id=video["id"], tenant_id=tenant_id, created_at=now, status="queued", data=video))
        await self._queue.enqueue("generate_video", key=video["id"], video_id=video["id"])
        return wire(video)

    async def _source(self, tenant_id: str, video_id, param: str) -> dict:
        if not isinstance(video_id, str) or not video_id:
            raise invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
        source = dict((await self._row(video_id, tenant_id)).data)
        if source["status"] != "completed":
            raise invalid_request(f"Video {video_id} is not completed (status '{source['status']}'); only completed videos can be used here.",
                                  param=param, code="invalid_video_status")
        return source

    async def _backdrop_of(self, tenant_id: str, video_id: str) -> bytes | None:
        try:
            return await self._blobs.read_all(_key(tenant_id, video_id, "thumbnail.webp"))
        except BlobNotFound:
            return None

    async def _reference(self, tenant_id: str, value, upload: MediaFile | None) -> bytes | None:
        limit = self.max_reference_bytes
        if upload is not None:
            return rules.check_image(upload.data, "input_reference", limit)
        if value is None:
            return None
        if not isinstance(value, dict) or len([k for k in ("image_url", "file_id") if value.get(k)]) != 1:
            raise invalid_request("Invalid 'input_reference': provide exactly one of 'image_url' or 'file_id'.", param="input_reference", code="invalid_value")
        if value.get("file_id"):
            data = await self._files.read_all(tenant_id, value["file_id"])
            return rules.check_image(data, "input_reference.file_id", limit)
        return rules.check_image(rules.data_url(value["image_url"], "input_reference.image_url", limit), "input_reference.image_url", limit)

    async def _clip(self, upload: MediaFile, param: str = "video") -> tuple[str, float, bytes]:
        if len(upload.data) > self.max_clip_bytes:
            raise invalid_request(f"The file '{param}' is too large: {len(upload.data)} bytes; the limit is {self.max_clip_bytes} bytes.", param=param, code="file_too_large")
        try:
            return await model.probed(upload.data)
        except ValueError:
            raise invalid_request(f"Invalid '{param}': the file is not a video that can be decoded (expected an MP4).", param=param, code="invalid_video") from None

    # ---- API ----
    async def create(self, tenant_id: str, params: dict, upload: MediaFile | None = None) -> dict:
        text = rules.prompt(params.get("prompt"))
        model_name = rules.choice(params.get("model") or rules.DEFAULTS["model"], rules.MODELS, "model")
        seconds = rules.seconds(params.get("seconds") or rules.DEFAULTS["seconds"])
        size = rules.choice(params.get("size") or rules.DEFAULTS["size"], rules.SIZES, "size")
        reference = await self._reference(tenant_id, params.get("input_reference"), upload)
        return await self._start(tenant_id, model_name=model_name, prompt=text, size=size, seconds=seconds, job={"kind": "create"}, reference=reference)

    async def remix(self, tenant_id: str, video_id: str, params: dict) -> dict:
        text = rules.prompt(params.get("prompt"))
        source = dict((await self._row(video_id, tenant_id)).data)
        if source["status"] != "completed":
            raise invalid_request(f"Video {video_id} is not completed (status '{source['status']}'); only completed videos can be remixed.",
                                  param="video_id", code="invalid_video_status")
        return await self._start(tenant_id, model_name=source["model"], prompt=text, size=source["size"], seconds=source["seconds"],
                                 job={"kind": "remix", "source": video_id}, remixed_from=video_id, reference=await self._backdrop_of(tenant_id, video_id))

    async def _from_video(self, tenant_id: str, params: dict, upload: MediaFile | None) -> tuple[str, str, float, bytes | None, str | None]:
        """(model, size, seconds, backdrop, source id) of an edit's or extension's `video`: a completed
        video of the tenant, or an uploaded clip."""
        if upload is not None:
            size, duration, first = await self._clip(upload)
            return rules.DEFAULTS["model"], rules.nearest_size(size), duration, first, None
        ref = params.get("video")
        if not isinstance(ref, dict):
            raise invalid_request("Missing required parameter: 'video'.", param="video", code="missing_required_parameter")
        source = await self._source(tenant_id, ref.get("id"), "video.id")
        return source["model"], source["size"], float(source["seconds"]), await self._backdrop_of(tenant_id, source["id"]), source["id"]

    async def edit(self, tenant_id: str, params: dict, upload: MediaFile | None = None) -> dict:
        text = rules.prompt(params.get("prompt"))
        model_name, size, duration, backdrop, source = await self._from_video(tenant_id, params, upload)
        seconds = min(rules.SECONDS, key=lambda s: abs(int(s) - duration))  # the edited clip keeps the source's length
        return await self._start(tenant_id, model_name=model_name, prompt=text, size=size, seconds=seconds, job={"kind": "edit", "source": source}, reference=backdrop)

    async def extend(self, tenant_id: str, params: dict, upload: MediaFile | None = None) -> dict:
        text = rules.prompt(params.get("prompt"))
        if params.get("seconds") is None:
            raise invalid_request("Missing required parameter: 'seconds'.", param="seconds", code="missing_required_parameter")
        added = rules.seconds(params.get("seconds"), rules.EXTENSION_SECONDS)
        model_name, size, duration, backdrop, source = await self._from_video(tenant_id, params, upload)
        total = int(round(duration)) + int(added)  # `seconds` of an extension is the stitched total
        if total > rules.MAX_TOTAL_SECONDS:
            raise invalid_request(f"Invalid 'seconds': the extended video would last {total} seconds; at most {rules.MAX_TOTAL_SECONDS} seconds are supported.",
                                  param="seconds", code="invalid_value")
        total = str(total)
        return await self._start(tenant_id, model_name=model_name, prompt=text, size=size, seconds=total, job={"kind": "extension", "source": source, "added": added}, reference=backdrop)

    async def get(self, tenant_id: str, video_id: str) -> dict:
        return wire((await self._row(video_id, tenant_id)).data)

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, videos, page, {"tenant_id": tenant_id}, columns=(videos.c.id, videos.c.data))
        return list_body([wire(r.data) for r in rows], has_more)

    async def delete(self, tenant_id: str, video_id: str) -> dict:
        await self._row(video_id, tenant_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(videos).where(videos.c.id == video_id, videos.c.tenant_id == tenant_id))
        await self._blobs.delete_prefix(f"{tenant_id}/videos/{video_id}/")
        return {"id": video_id, "object": "video.deleted", "deleted": True}

    async def content(self, tenant_id: str, video_id: str, variant: str | None) -> tuple[bytes, str]:
        name, media_type = VARIANTS[rules.choice(variant or "video", tuple(VARIANTS), "variant")]
        video = (await self._row(video_id, tenant_id)).data
        if video["status"] != "completed":
            raise invalid_request(f"Video {video_id} is not ready: its status is '{video['status']}'.", param="video_id", code="video_not_ready")
        try:
            return await self._blobs.read_all(_key(tenant_id, video_id, name)), media_type
        except BlobNotFound:
            raise not_found("Video content", video_id, param="video_id") from None

    async def create_character(self, tenant_id: str, name, upload: MediaFile | None) -> dict:
        if upload is None:
            raise invalid_request("Missing required parameter: 'video'.", param="video", code="missing_required_parameter")
        if not isinstance(name, str) or not name:
            raise invalid_request("Missing required parameter: 'name'.", param="name", code="missing_required_parameter")
        if len(name) > 80:
            raise invalid_request(f"Invalid 'name': string too long. Expected a string with maximum length 80, but got a string with length {len(name)} instead.",
                                  param="name", code="string_above_max_length")
        await self._clip(upload)
        character = {"id": new_id("char_"), "name": name, "created_at": int(time.time())}
        async with self._db.begin() as conn:
            await conn.execute(insert(characters).values(id=character["id"], tenant_id=tenant_id, created_at=character["created_at"], data=character))
        return character

    async def get_character(self, tenant_id: str, character_id: str) -> dict:
        row = await self._db.fetch_one(select(characters.c.data, characters.c.tenant_id).where(characters.c.id == character_id))
        if row is None or row.tenant_id != tenant_id:
            raise not_found("Character", character_id, param="character_id")
        return row.data

    # ---- the job ----
    async def execute(self, video_id: str) -> None:
        try:
            row = await self._row(video_id)
        except Exception:
            return  # deleted before the job ran
        tenant_id, video = row.tenant_id, dict(row.data)
        if video["status"] in TERMINAL:
            return
        if video["status"] == "queued":
            video["status"] = "in_progress"
            if not await self._save(video, ("queued",)):
                return await self.execute(video_id)
        job = video.get(_PRIVATE) or {}
        provider = self._inference.provider_for(tenant_id, video["model"])
        if provider.info.kind == "offline":
            # The offline model's pacing: progress climbs to 90 a step at a time, then the clip renders.
            while video["progress"] < 90:
                await asyncio.sleep(self._step_seconds)
                video["progress"] = min(90, video["progress"] + PROGRESS_STEP)
                if not await self._save(video, ("in_progress",)):
                    return  # deleted meanwhile
        reference = None
        if job.get("reference"):
            try:
                reference = await self._blobs.read_all(_key(tenant_id, video_id, "reference"))
            except BlobNotFound:
                reference = None

        async def report(upstream_id: str, progress: int) -> bool:
            job["upstream_id"] = upstream_id
            video["progress"] = max(video["progress"], min(99, progress))
            return await self._save(video, ("in_progress",))

        request = await self._request(tenant_id, video, job, reference)
        try:
            rendered = await provider.videos(request, report)
        except Exception as error:  # a clip that cannot be made fails the video, with the reason
            message = getattr(error, "message", None) or str(error)
            video.update(status="failed", completed_at=int(time.time()), error={"code": "video_generation_failed", "message": f"The video could not be generated: {message}"})
            await self._save(video, ("in_progress",))
            return
        if rendered is None:
            return  # deleted meanwhile
        for name, data in (("video.mp4", rendered.mp4), ("thumbnail.webp", rendered.thumbnail), ("spritesheet.webp", rendered.spritesheet)):
            await self._blobs.put(_key(tenant_id, video_id, name), data)
        now = int(time.time())
        video.update(status="completed", progress=100, completed_at=now, expires_at=now + ASSET_TTL_SECONDS)
        if not await self._save(video, ("in_progress",)):  # deleted while rendering: its blobs go too
            await self._blobs.delete_prefix(f"{tenant_id}/videos/{video_id}/")

    async def _request(self, tenant_id: str, video: dict, job: dict, reference: bytes | None) -> MediaRequest:
        """What the provider is sent: OpenAI's own request for an upstream (a remix, edit or extension of a
        video the same upstream made names that video's upstream id; otherwise a create with the
        backdrop as its input_reference), and the offline model's plan."""
        plan = {"prompt": video["prompt"], "size": video["size"], "seconds": video["seconds"], "seed": video["model"],
                "reference": reference, "upstream_id": job.get("upstream_id"), "poll_seconds": self._poll_seconds}
        source = await self._upstream_source(tenant_id, job.get("source"))
        kind = job.get("kind", "create")
        if source and kind == "remix":
            return MediaRequest(f"videos/{source}/remix", {"prompt": video["prompt"]}, plan=plan)
        if source and kind in ("edit", "extension"):
            params = {"video": {"id": source}, "prompt": video["prompt"], **({"seconds": job["added"]} if kind == "extension" else {})}
            return MediaRequest("videos/edits" if kind == "edit" else "videos/extensions", params, plan=plan)
        params = {"prompt": video["prompt"], "model": video["model"], "size": video["size"], "seconds": video["seconds"]}
        files = [MediaFile("input_reference", "reference.png", "image/png", reference)] if reference else []
        return MediaRequest("videos", params, files, plan=plan)

    async def _upstream_source(self, tenant_id: str, source_id: str | None) -> str | None:
        if not source_id:
            return None
        row = await self._db.fetch_one(select(videos.c.data, videos.c.tenant_id).where(videos.c.id == source_id))
        if row is None or row.tenant_id != tenant_id:
            return None
        return (row.data.get(_PRIVATE) or {}).get("upstream_id")
