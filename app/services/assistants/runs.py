"""Runs and run steps, as the API sees them: create (and create-and-run), list, retrieve, update, cancel,
submit tool outputs, expiry — and the event stream a `stream: true` call returns.

Execution happens in the `execute_run` job (executor.py); this side only moves a run between the states
a client can move it through, each a compare-and-set on the status column so it never races the job.
"""
from __future__ import annotations

from typing import AsyncIterator

from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError, invalid_request, not_found
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.assistants import run_objects as objects
from app.services.assistants.executor import close_unfinished, public_step
from app.services.assistants.run_store import RunStore, runs, steps
from app.services.schema_checks import chat_shaped, check_offline_schemas
from storage.models import ACTIVE_RUN_STATUSES
from storage.prepared import Prepared

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
_GET = Prepared(select(runs.c.data).where(runs.c.id == bindparam("id"), runs.c.tenant_id == bindparam("tenant_id")))
# Equalities, not IN: a Prepared statement cannot hold an expanding IN list.
_ACTIVE = Prepared(select(runs.c.id).where(runs.c.thread_id == bindparam("thread_id"), or_(*(runs.c.status == s for s in ACTIVE_RUN_STATUSES))))
_OVERDUE = Prepared(select(runs.c.id).where(runs.c.status == "requires_action", runs.c.expires_at < bindparam("now")))
_GET_STEP = Prepared(select(steps.c.data).where(steps.c.id == bindparam("id"), steps.c.tenant_id == bindparam("tenant_id")))


def _check_tool_choice(choice) -> None:
    """A function choice names its function (the SDK's types leave `function.name` unchecked): refused
    now, not as a run that fails inside the job."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid_request("Missing required parameter: 'tool_choice.function.name'.", param="tool_choice.function.name",
                                  code="missing_required_parameter")


def include_content(include: list[str] | None) -> bool:
    for item in include or ():
        if item != FILE_SEARCH_CONTENT:
            raise invalid_request(f"Invalid value: '{item}'. Supported values are: '{FILE_SEARCH_CONTENT}'.", param="include", code="invalid_value")
    return bool(include)


class RunsService:
    def __init__(self, store: RunStore, bus, queue, assistants, threads, thread_messages, inference, settings) -> None:
        self.store = store
        self._bus = bus
        self._queue = queue
        self._assistants = assistants
        self._threads = threads
        self._messages = thread_messages
        self._inference = inference
        self._settings = settings

    # ---- reads ----

    async def get(self, tenant_id: str, thread_id: str, run_id: str) -> dict:
        row = await self.store.db.fetch_one(_GET, {"id": run_id, "tenant_id": tenant_id})
        if row is None or row.data["thread_id"] != thread_id:
            raise not_found("Run", run_id, param="run_id")
        return await self._expire_if_overdue(row.data)

    async def list(self, tenant_id: str, thread_id: str, page: Page) -> dict:
        await self._threads.get(tenant_id, thread_id)
        rows, has_more = await fetch_page(self.store.db, runs, page, {"tenant_id": tenant_id, "thread_id": thread_id}, columns=(runs.c.id, runs.c.data))
        return list_body([await self._expire_if_overdue(row.data) for row in rows], has_more)

    async def step(self, tenant_id: str, thread_id: str, run_id: str, step_id: str, include: list[str] | None) -> dict:
        with_content = include_content(include)
        await self.get(tenant_id, thread_id, run_id)
        row = await self.store.db.fetch_one(_GET_STEP, {"id": step_id, "tenant_id": tenant_id})
        if row is None or row.data["run_id"] != run_id:
            raise not_found("RunStep", step_id, param="step_id")
        return public_step(row.data, with_content)

    async def list_steps(self, tenant_id: str, thread_id: str, run_id: str, page: Page, include: list[str] | None) -> dict:
        with_content = include_content(include)
        await self.get(tenant_id, thread_id, run_id)
        rows, has_more = await fetch_page(self.store.db, steps, page, {"tenant_id": tenant_id, "run_id": run_id}, columns=(steps.c.id, steps.c.data))
        return list_body([public_step(row.data, with_content) for row in rows], has_more)

    # ---- creating ----

    async def create(self, tenant_id: str, thread_id: str, params: dict) -> dict:
        """The run, queued (not yet started: `start` enqueues it, after a streaming caller subscribed)."""
        thread = await self._threads.get(tenant_id, thread_id)
        assistant = await self._assistants.get(tenant_id, params["assistant_id"])
        if params.get("metadata") is not None:
            check_metadata(params["metadata"])
        model = params.get("model") or assistant["model"]
        self._inference.provider_for(tenant_id, model)  # an unknown model is refused now, not inside the job
        _check_tool_choice(params.get("tool_choice"))
        await check_offline_schemas(self._inference, tenant_id, model, chat_shaped(params.get("tools"), params.get("response_format")))
        run = objects.new_run(thread_id=thread["id"], assistant=assistant, params=params, expires_in=self._settings.run_expiry_seconds)
        try:
            await self.store.insert_run(run, tenant_id)
        except IntegrityError:
            active = await self.store.db.fetch_one(_ACTIVE, {"thread_id": thread_id})
            raise invalid_request(f"Thread {thread_id} already has an active run {active.id if active else ''}.".replace(" .", ".")) from None
        for message in params.get("additional_messages") or ():
            await self._messages.create_unchecked(tenant_id, thread_id, message)
        return run

    async def create_thread_and_run(self, tenant_id: str, params: dict) -> tuple[dict, dict]:
        thread_params = dict(params.get("thread") or {})
        if params.get("tool_resources") is not None and thread_params.get("tool_resources") is None:
            thread_params["tool_resources"] = params["tool_resources"]
        await self._assistants.get(tenant_id, params["assistant_id"])  # before a thread is made for nothing
        _check_tool_choice(params.get("tool_choice"))
        thread = await self._threads.create(tenant_id, thread_params)
        run_params = {k: v for k, v in params.items() if k not in ("thread", "tool_resources")}
        return thread, await self.create(tenant_id, thread["id"], run_params)

    async def start(self, run: dict) -> None:
        await self._queue.enqueue("execute_run", run_id=run["id"])

    # ---- client moves ----

    async def update(self, tenant_id: str, thread_id: str, run_id: str, metadata) -> dict:
        run = await self.get(tenant_id, thread_id, run_id)
        run["metadata"] = check_metadata(metadata) or {}
        await self.store.save_run(run)
        return run

    async def cancel(self, tenant_id: str, thread_id: str, run_id: str) -> dict:
        run = await self.get(tenant_id, thread_id, run_id)
        if run["status"] == "requires_action":
            # Nothing is executing: the run ends now.
            now = objects.now()
            run.update(status="cancelled", cancelled_at=now, required_action=None, expires_at=None)
            batch = self.store.batch().save_run(run, expect="requires_action")
            await close_unfinished(self.store, run_id, "cancelled", now, None, batch)
            if not await batch.commit():
                return await self.cancel(tenant_id, thread_id, run_id)
            await self._bus.publish(f"run:{run_id}", ("thread.run.cancelled", run))
            return run
        if run["status"] not in ("queued", "in_progress"):
            raise invalid_request(f"Cannot cancel run with status '{run['status']}'.", param=None)
        previous = run["status"]
        run["status"] = "cancelling"
        if not await self.store.save_run(run, expect=previous):
            return await self.cancel(tenant_id, thread_id, run_id)
        await self._bus.publish(f"run:{run_id}", ("thread.run.cancelling", run))
        if previous == "queued":
            await self.start(run)  # the job (queued or next) turns cancelling into cancelled
        return run

    async def submit_tool_outputs(self, tenant_id: str, thread_id: str, run_id: str, tool_outputs: list[dict]) -> tuple[dict, dict]:
        """(the run, queued again; the tool-calls step, completed with the outputs)."""
        run = await self.get(tenant_id, thread_id, run_id)
        if run["status"] != "requires_action":
            raise invalid_request(f'Runs in status "{run["status"]}" do not accept tool outputs.', param=None)
        pending = [call["id"] for call in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
        outputs: dict[str, str] = {}
        for index, item in enumerate(tool_outputs):
            call_id = item.get("tool_call_id")
            if call_id not in pending:
                raise invalid_request(f"Invalid 'tool_outputs[{index}].tool_call_id': no pending tool call has id '{call_id}'.", param=f"tool_outputs[{index}].tool_call_id")
            outputs[call_id] = item.get("output") or ""
        missing = [call_id for call_id in pending if call_id not in outputs]
        if missing:
            raise invalid_request(f"Expected tool outputs for call_ids {pending}, got {list(outputs)}.", param="tool_outputs")
        step = next(s for s in reversed(await self.store.steps(run_id)) if s["type"] == "tool_calls" and s["status"] == "in_progress")
        for call in step["step_details"]["tool_calls"]:
            if call["type"] == "function" and call["id"] in outputs:
                call["function"]["output"] = outputs[call["id"]]
        step.update(status="completed", completed_at=objects.now())
        run.update(status="queued", required_action=None, expires_at=objects.now() + self._settings.run_expiry_seconds)
        if not await self.store.batch().save_run(run, expect="requires_action").save_step(step).commit():
            raise invalid_request("The run is no longer waiting for tool outputs.", param=None)
        return run, public_step(step, False)

    # ---- expiry ----

    async def _expire_if_overdue(self, run: dict) -> dict:
        if run["status"] == "requires_action" and run.get("expires_at") and run["expires_at"] < objects.now():
            await self.expire(run["id"])
            return await self.store.run(run["id"]) or run
        return run

    async def expire(self, run_id: str) -> None:
        run = await self.store.run(run_id)
        if run is None or run["status"] != "requires_action":
            return
        now = objects.now()
        run.update(status="expired", required_action=None, expires_at=None)
        batch = self.store.batch().save_run(run, expect="requires_action")
        await close_unfinished(self.store, run_id, "expired", now, None, batch)
        if await batch.commit():
            await self._bus.publish(f"run:{run_id}", ("thread.run.expired", run))

    async def sweep_expired(self) -> int:
        overdue = await self.store.db.fetch_all(_OVERDUE, {"now": objects.now()})
        for row in overdue:
            await self.expire(row.id)
        return len(overdue)

    # ---- streaming ----

    async def events(self, run: dict, prelude: list[tuple[str, dict]], include: list[str] | None = None) -> AsyncIterator[tuple[str, object]]:
        """The run's events as OpenAI streams them: `prelude` (what the request itself did), then what the
        job publishes, up to the run's end or its pause for tool outputs, then `done`. Subscribes before
        the job starts, so no event is missed."""
        with_content = include_content(include)
        async with self._bus.subscribe(f"run:{run['id']}") as subscription:
            for event in prelude:
                yield event
            await self.start(run)
            async for name, data in subscription:
                if name.startswith("thread.run.step."):
                    data = public_step(data, with_content) if "step_details" in data and data.get("object") == "thread.run.step" else data
                yield name, data
                if name in objects.STREAM_END:
                    break
        yield "done", "[DONE]"
