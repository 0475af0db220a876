"""/v1/evals: evals, their runs and the runs' output items; and /v1/fine_tuning/alpha/graders (run, validate).
Runs are graded by the `execute_eval_run` job."""
from __future__ import annotations

from litestar import Controller, Request, delete, get, post

from app.api.deps import caller
from app.api.links import public_base_url
from app.core.errors import invalid_request
from app.core.pagination import page_params
from app.core.validation import decode_json_object


class EvalsController(Controller):
    path = "/evals"

    @post("/", status_code=200)
    async def create(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.create(tenant, decode_json_object(await request.body()))

    @get("/")
    async def list_evals(self, request: Request, limit: int | None = None, order: str | None = None, after: str | None = None,
                         order_by: str | None = None) -> dict:
        platform, tenant = caller(request)
        if order_by not in (None, "created_at", "updated_at"):
            raise invalid_request(f"Invalid value: '{order_by}'. Supported values are: 'created_at' and 'updated_at'.", param="order_by",
                                  code="invalid_value")
        return await platform.evals.list(tenant, page_params(limit, order or "asc", after))

    @get("/{eval_id:str}")
    async def retrieve(self, request: Request, eval_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.get(tenant, eval_id)

    @post("/{eval_id:str}", status_code=200)
    async def update(self, request: Request, eval_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.update(tenant, eval_id, decode_json_object(await request.body()))

    @delete("/{eval_id:str}", status_code=200)
    async def delete_eval(self, request: Request, eval_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.delete(tenant, eval_id)

    @post("/{eval_id:str}/runs", status_code=200)
    async def create_run(self, request: Request, eval_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.create_run(tenant, eval_id, decode_json_object(await request.body()), public_base_url(request))

    @get("/{eval_id:str}/runs")
    async def list_runs(self, request: Request, eval_id: str, limit: int | None = None, order: str | None = None, after: str | None = None,
                        status: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.list_runs(tenant, eval_id, page_params(limit, order or "asc", after), status)

    @get("/{eval_id:str}/runs/{run_id:str}")
    async def retrieve_run(self, request: Request, eval_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.get_run(tenant, eval_id, run_id)

    @post(["/{eval_id:str}/runs/{run_id:str}", "/{eval_id:str}/runs/{run_id:str}/cancel"], status_code=200)
    async def cancel_run(self, request: Request, eval_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.cancel_run(tenant, eval_id, run_id)

    @delete("/{eval_id:str}/runs/{run_id:str}", status_code=200)
    async def delete_run(self, request: Request, eval_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.delete_run(tenant, eval_id, run_id)

    @get("/{eval_id:str}/runs/{run_id:str}/output_items")
    async def list_items(self, request: Request, eval_id: str, run_id: str, limit: int | None = None, order: str | None = None,
                         after: str | None = None, status: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.list_items(tenant, eval_id, run_id, page_params(limit, order or "asc", after), status)

    @get("/{eval_id:str}/runs/{run_id:str}/output_items/{output_item_id:str}")
    async def retrieve_item(self, request: Request, eval_id: str, run_id: str, output_item_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.evals.get_item(tenant, eval_id, run_id, output_item_id)


class GradersController(Controller):
    path = "/fine_tuning/alpha/graders"

    @post("/run", status_code=200)
    async def run(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return await platform.graders.run(tenant, decode_json_object(await request.body()))

    @post("/validate", status_code=200)
    async def validate(self, request: Request) -> dict:
        platform, _ = caller(request)
        return platform.graders.validate(decode_json_object(await request.body()))


EVALS_HANDLERS: list = [EvalsController, GradersController]
