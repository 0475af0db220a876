"""/v1/threads/runs and /v1/threads/{thread_id}/runs: runs (streamed or not), their steps, cancel and
tool outputs."""
from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.response import Stream
from openai.types.beta import thread_create_and_run_params as create_and_run_params
from openai.types.beta.threads import run_create_params, run_submit_tool_outputs_params

from app.api.deps import caller
from app.core.pagination import page_params
from app.core.sse import named_events, sse_response
from app.core.bounds import check_bounds
from app.core.validation import decode_json_object, required_only, validate_params
from app.services.assistants.runs import include_content


def _include(request: Request) -> list[str]:
    return request.query_params.getall("include[]", []) + request.query_params.getall("include", [])


async def _params(request: Request, streaming_type, plain_type, **path) -> tuple[dict, bool]:
    body = decode_json_object(await request.body())
    streaming = body.get("stream") is True
    validate_params(streaming_type if streaming else plain_type, {**body, **path})  # the SDK's types include path ids
    check_bounds("runs", body)
    body.pop("stream", None)
    return body, streaming


def _stream(platform, run: dict, prelude: list, include: list[str] | None = None) -> Stream:
    return sse_response(named_events(platform.runs.events(run, prelude, include)))


class RunsController(Controller):
    path = "/threads"

    @post("/runs", status_code=200)
    async def create_thread_and_run(self, request: Request) -> dict | Stream:
        platform, tenant = caller(request)
        params, streaming = await _params(
            request, create_and_run_params.ThreadCreateAndRunParamsStreaming, create_and_run_params.ThreadCreateAndRunParamsNonStreaming
        )
        thread, run = await platform.runs.create_thread_and_run(tenant, params)
        if streaming:
            return _stream(platform, run, [("thread.created", thread), ("thread.run.created", run), ("thread.run.queued", run)])
        await platform.runs.start(run)
        return run

    @post("/{thread_id:str}/runs", status_code=200)
    async def create(self, request: Request, thread_id: str) -> dict | Stream:
        platform, tenant = caller(request)
        include = _include(request)
        include_content(include)  # checked before anything is created
        params, streaming = await _params(request, run_create_params.RunCreateParamsStreaming, run_create_params.RunCreateParamsNonStreaming)
        run = await platform.runs.create(tenant, thread_id, params)
        if streaming:
            return _stream(platform, run, [("thread.run.created", run), ("thread.run.queued", run)], include)
        await platform.runs.start(run)
        return run

    @get("/{thread_id:str}/runs")
    async def list_runs(self, request: Request, thread_id: str, limit: int | None = None, order: str | None = None,
                        after: str | None = None, before: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.list(tenant, thread_id, page_params(limit, order, after, before))

    @get("/{thread_id:str}/runs/{run_id:str}")
    async def retrieve(self, request: Request, thread_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.get(tenant, thread_id, run_id)

    @post("/{thread_id:str}/runs/{run_id:str}", status_code=200)
    async def update(self, request: Request, thread_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.update(tenant, thread_id, run_id, required_only(decode_json_object(await request.body()), "metadata"))

    @post("/{thread_id:str}/runs/{run_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, thread_id: str, run_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.cancel(tenant, thread_id, run_id)

    @post("/{thread_id:str}/runs/{run_id:str}/submit_tool_outputs", status_code=200)
    async def submit_tool_outputs(self, request: Request, thread_id: str, run_id: str) -> dict | Stream:
        platform, tenant = caller(request)
        params, streaming = await _params(
            request, run_submit_tool_outputs_params.RunSubmitToolOutputsParamsStreaming,
            run_submit_tool_outputs_params.RunSubmitToolOutputsParamsNonStreaming, thread_id=thread_id,
        )
        run, step = await platform.runs.submit_tool_outputs(tenant, thread_id, run_id, params["tool_outputs"])
        if streaming:
            return _stream(platform, run, [("thread.run.step.completed", step), ("thread.run.queued", run)])
        await platform.runs.start(run)
        return run

    @get("/{thread_id:str}/runs/{run_id:str}/steps")
    async def list_steps(self, request: Request, thread_id: str, run_id: str, limit: int | None = None, order: str | None = None,
                         after: str | None = None, before: str | None = None) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.list_steps(tenant, thread_id, run_id, page_params(limit, order, after, before), _include(request))

    @get("/{thread_id:str}/runs/{run_id:str}/steps/{step_id:str}")
    async def retrieve_step(self, request: Request, thread_id: str, run_id: str, step_id: str) -> dict:
        platform, tenant = caller(request)
        return await platform.runs.step(tenant, thread_id, run_id, step_id, _include(request))
