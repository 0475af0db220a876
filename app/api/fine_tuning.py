"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, pause, resume, events and checkpoints."""
from __future__ import annotations

from litestar import Controller, Request, get, post
from openai.types.fine_tuning import job_create_params

from app.api.deps import caller
from app.core.metadata import metadata_filters
from app.core.pagination import page_params
from app.core.validation import decode_json_object, validate_params


def _page(request: Request, limit: int | None, after: str | None):
    return page_params(limit, "desc", after)


class FineTuningJobsController(Controller):
    path = "/fine_tuning/jobs"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        body = decode_json_object(await request.body())
        validate_params(job_create_params.JobCreateParams, body)
        return await platform.fine_tuning.create(tenant, body)

    @get("/")
    async def list_jobs(self, request: Request, limit: int | None = None, after: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.list(tenant, _page(request, limit, after), metadata_filters(request.query_params.multi_items()) or None)

    @get("/{job_id:str}")
    async def retrieve(self, request: Request, job_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.get(tenant, job_id)

    @get("/{job_id:str}/events")
    async def list_events(self, request: Request, job_id: str, limit: int | None = None, after: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.list_events(tenant, job_id, _page(request, limit, after))

    @get("/{job_id:str}/checkpoints")
    async def list_checkpoints(self, request: Request, job_id: str, limit: int | None = None, after: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.list_checkpoints(tenant, job_id, _page(request, limit, after))

    @post("/{job_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, job_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.cancel(tenant, job_id)

    @post("/{job_id:str}/pause", status_code=200)
    async def pause(self, request: Request, job_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.pause(tenant, job_id)

    @post("/{job_id:str}/resume", status_code=200)
    async def resume(self, request: Request, job_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.fine_tuning.resume(tenant, job_id)


FINE_TUNING_HANDLERS: list = [FineTuningJobsController]
