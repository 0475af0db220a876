"""Executes a run (the `execute_run` job): model turns until a reply, a function call for the client, or
the end — writing steps and messages as it goes and publishing OpenAI's run events on the bus.

Resumable by construction: the run's status row is the truth. A job that finds its run queued or in
progress removes what an interrupted attempt left half-done (in-progress steps and their messages) and
asks the model again, so a restart neither loses nor duplicates steps or messages. Status changes are
compare-and-set (run_store.py): a cancel from the API is noticed between chunks and turns.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from app.core.errors import APIError
from app.core.ids import new_id
from app.core.tokens import count_chat_tokens
from app.services.assistants import builtin_tools as builtins
from app.services.assistants import run_objects as objects
from app.services.assistants.prompt import build_request
from app.services.assistants.run_store import RunStore

log = logging.getLogger("understudy.runs")
MAX_TURNS = 16  # model calls per job invocation: a model that keeps calling built-in tools is stopped
CANCEL_POLL_SECONDS = 0.25
_RUNNING = ("in_progress",)


class Stop(Exception):
    """The run left `in_progress` under us (cancelling, expired, deleted): stop writing to it."""


@dataclass
class Turn:
    message: dict | None = None
    message_step: dict | None = None
    text: list[str] = field(default_factory=list)
    tool_step: dict | None = None
    calls: dict[int, dict] = field(default_factory=dict)  # stream index -> {"id", "name", "arguments"}
    usage: dict | None = None
    finish: str | None = None


class RunExecutor:
    def __init__(self, store: RunStore, bus, inference, files, vector_search, platform_ref) -> None:
        self.store = store
        self.bus = bus
        self.inference = inference
        self.files = files
        self.vector_search = vector_search
        self._platform = platform_ref  # a callable returning the Platform (built-in tools use its services)

    async def publish(self, run: dict, event: str, data: dict) -> None:
        await self.bus.publish(f"run:{run['id']}", (event, data))

    # ---- the job ----

    async def execute(self, run_id: str) -> None:
        found = await self.store.run_and_tenant(run_id)
        if found is None:
            return
        run, tenant_id = found
        if run["status"] == "cancelling":
            await self.finish(run, "cancelled")
            return
        if run["status"] not in ("queued", "in_progress"):
            return  # finished, or waiting for tool outputs: nothing to do
        await self.store.discard_unfinished(run_id)
        if run["status"] == "queued":
            run["status"], run["started_at"] = "in_progress", run["started_at"] or objects.now()
            if not await self.store.save_run(run, expect="queued"):
                return await self.execute(run_id)  # cancelled meanwhile: re-read and react
            await self.publish(run, "thread.run.in_progress", run)
        try:
            for _ in range(MAX_TURNS):
                if not await self.turn(run, tenant_id):
                    return
            await self.fail(run, objects.server_error(f"The run stopped after {MAX_TURNS} model calls without a reply."))
        except Stop:
            await self.react_to_stop(run["id"])
        except APIError as error:
            code = "rate_limit_exceeded" if error.status_code == 429 else "invalid_prompt" if error.status_code < 500 else "server_error"
            await self.fail(run, objects.server_error(error.message, code))
        except builtins.ToolFailure as error:
            await self.fail(run, objects.server_error(str(error)))
        except Exception:
            log.exception("run %s failed", run_id)
            await self.fail(run, objects.server_error("The server had an error while processing the run."))

    async def react_to_stop(self, run_id: str) -> None:
        run = await self.store.run(run_id)
        if run is not None and run["status"] == "cancelling":
            await self.finish(run, "cancelled")

    # ---- one model call ----

    async def turn(self, run: dict, tenant_id: str) -> bool:
        """One model call and what follows from it; True when another turn should follow."""
        steps = await self.store.steps(run["id"])
        thread_messages = await self.store.thread_messages(run["thread_id"])
        params, fits = await build_request(run, thread_messages, steps, lambda file_id: self.image(tenant_id, file_id))
        if not fits:
            await self.finish(run, "incomplete", incomplete={"reason": "max_prompt_tokens"})
            return False
        if run.get("max_completion_tokens"):
            left = run["max_completion_tokens"] - ((run.get("usage") or {}).get("completion_tokens") or 0)
            if left <= 0:
                await self.finish(run, "incomplete", incomplete={"reason": "max_completion_tokens"})
                return False
            params["max_completion_tokens"] = left
        turn = Turn()
        checked = time.monotonic()
        stream = await self.inference.stream(tenant_id, "chat_stream", params)
        async for chunk in stream:
            if time.monotonic() - checked > CANCEL_POLL_SECONDS:
                await self.check_running(run)
                checked = time.monotonic()
            if chunk.get("usage"):
                turn.usage = objects.usage(chunk["usage"].get("prompt_tokens") or 0, chunk["usage"].get("completion_tokens") or 0)
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    await self.on_text(run, tenant_id, turn, delta["content"])
                for call in delta.get("tool_calls") or ():
                    await self.on_tool_call(run, tenant_id, turn, call)
                if choice.get("finish_reason"):
                    turn.finish = choice["finish_reason"]
        await self.check_running(run)
        # Counted here only when the provider reported no usage (tiktoken over the whole prompt is not free).
        turn.usage = turn.usage or objects.usage(count_chat_tokens(params["messages"]), 0)
        run["usage"] = objects.add_usage(run.get("usage"), turn.usage)
        truncated = turn.finish == "length"
        has_text = turn.message is not None or turn.tool_step is None
        if turn.message is None and turn.tool_step is None:  # a reply with no text at all is still a (empty) message
            await self.start_message(run, tenant_id, turn)

        def write_message(batch) -> list[tuple[str, dict]]:
            return self.complete_message(run, turn, steps, truncated, None if turn.tool_step else turn.usage, batch) if has_text else []

        if turn.tool_step is not None and not truncated:
            batch = self.store.batch()
            events = write_message(batch)
            await batch.commit()
            for event in events:
                await self.publish(run, *event)
            return await self.run_tools(run, tenant_id, turn, steps)
        # The reply, its step and the run's end commit together (one transaction per step, not three).
        if truncated:
            await self.finish(run, "incomplete", incomplete={"reason": "max_completion_tokens" if run.get("max_completion_tokens") else "max_tokens"},
                              writes=write_message)
        else:
            await self.finish(run, "completed", writes=write_message)
        return False

    async def on_text(self, run: dict, tenant_id: str, turn: Turn, text: str) -> None:
        if turn.message is None:
            await self.start_message(run, tenant_id, turn)
        turn.text.append(text)
        await self.publish(run, "thread.message.delta", objects.message_delta(turn.message["id"], text))

    async def start_message(self, run: dict, tenant_id: str, turn: Turn) -> None:
        turn.message = objects.new_run_message(run)
        turn.message_step = objects.new_step(run, "message_creation", objects.message_creation_details(turn.message["id"]))
        await self.store.batch().insert_step(turn.message_step, tenant_id).insert_message(turn.message, tenant_id).commit()
        await self.publish(run, "thread.run.step.created", turn.message_step)
        await self.publish(run, "thread.run.step.in_progress", turn.message_step)
        await self.publish(run, "thread.message.created", turn.message)
        await self.publish(run, "thread.message.in_progress", turn.message)

    async def on_tool_call(self, run: dict, tenant_id: str, turn: Turn, delta: dict) -> None:
        if turn.tool_step is None:
            turn.tool_step = objects.new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
            await self.store.batch().insert_step(turn.tool_step, tenant_id).commit()
            await self.publish(run, "thread.run.step.created", turn.tool_step)
            await self.publish(run, "thread.run.step.in_progress", turn.tool_step)
        index = delta.get("index", len(turn.calls))
        call = turn.calls.setdefault(index, {"id": delta.get("id") or new_id("call_"), "name": "", "arguments": ""})
        function = delta.get("function") or {}
        call["name"] += function.get("name") or ""
        piece = function.get("arguments") or ""
        call["arguments"] += piece
        kind = self.call_type(run, call["name"])
        if kind == "function":
            shown = {"index": index, "id": call["id"], "type": "function", "function": {"name": function.get("name") or "", "arguments": piece, "output": None}}
        elif kind == "code_interpreter":
            shown = {"index": index, "id": call["id"], "type": "code_interpreter", "code_interpreter": {"input": piece, "outputs": []}}
        else:
            shown = {"index": index, "id": call["id"], "type": "file_search", "file_search": {}}
        await self.publish(run, "thread.run.step.delta", objects.tool_calls_delta(turn.tool_step["id"], [shown]))

    @staticmethod
    def call_type(run: dict, name: str) -> str:
        builtin = {t["type"] for t in run.get("tools") or () if t["type"] != "function"}
        return name if name in builtin else "function"

    def complete_message(self, run: dict, turn: Turn, steps: list[dict], truncated: bool, usage: dict | None, batch) -> list[tuple[str, dict]]:
        """Adds the finished reply and its step to `batch`; returns the events to publish once committed."""
        text = "".join(turn.text)
        searches = [call["file_search"]["results"] for step in steps if step["type"] == "tool_calls"
                    for call in step["step_details"]["tool_calls"] if call["type"] == "file_search"]
        message, step, now = turn.message, turn.message_step, objects.now()
        message["content"] = [objects.text_part(text, builtins.citations(text, searches))]
        if truncated:
            message.update(status="incomplete", incomplete_at=now, incomplete_details={"reason": "max_tokens"})
        else:
            message.update(status="completed", completed_at=now)
        step.update(status="completed", completed_at=now, usage=usage or turn.usage)
        batch.save_message(message).save_step(step)
        return [("thread.message.incomplete" if truncated else "thread.message.completed", message), ("thread.run.step.completed", step)]

    # ---- tools ----

    async def run_tools(self, run: dict, tenant_id: str, turn: Turn, steps: list[dict]) -> bool:
        step = turn.tool_step
        search_index = sum(1 for s in steps if s["type"] == "tool_calls" for c in s["step_details"]["tool_calls"] if c["type"] == "file_search")
        calls, pending = [], []
        for _, call in sorted(turn.calls.items()):
            kind = self.call_type(run, call["name"])
            if kind == "function":
                calls.append({"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"], "output": None}})
                pending.append({"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}})
            elif kind == "file_search":
                options = next((t.get("file_search") or {} for t in run["tools"] if t["type"] == "file_search"), {})
                stores = await self.vector_store_ids(run, tenant_id)
                payload = await builtins.file_search(self._platform(), tenant_id, stores, call["arguments"], options, search_index)
                search_index += 1
                calls.append({"id": call["id"], "type": "file_search", "file_search": payload})
            else:
                payload = await builtins.code_interpreter(self._platform(), tenant_id, call["arguments"], await self.code_files(run, tenant_id))
                calls.append({"id": call["id"], "type": "code_interpreter", "code_interpreter": payload})
            await self.check_running(run)
        step["step_details"]["tool_calls"] = calls
        step["usage"] = turn.usage
        if pending:
            run.update(status="requires_action", expires_at=objects.now() + self._platform().settings.run_expiry_seconds,
                       required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": pending}})
            if not await self.store.batch().save_run(run, expect=_RUNNING).save_step(step).commit():
                raise Stop()
            await self.publish(run, "thread.run.requires_action", run)
            return False
        step.update(status="completed", completed_at=objects.now())
        await self.store.batch().save_step(step).commit()
        await self.publish(run, "thread.run.step.completed", public_step(step, False))
        return True

    async def vector_store_ids(self, run: dict, tenant_id: str) -> list[str]:
        platform = self._platform()
        ids: list[str] = []
        for owner in (await platform.threads.get(tenant_id, run["thread_id"]), await platform.assistants.get(tenant_id, run["assistant_id"])):
            for store_id in ((owner.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or ():
                if store_id not in ids:
                    ids.append(store_id)
        return ids

    async def code_files(self, run: dict, tenant_id: str) -> list[str]:
        platform = self._platform()
        ids: list[str] = []
        for owner in (await platform.assistants.get(tenant_id, run["assistant_id"]), await platform.threads.get(tenant_id, run["thread_id"])):
            ids += ((owner.get("tool_resources") or {}).get("code_interpreter") or {}).get("file_ids") or []
        for message in await self.store.thread_messages(run["thread_id"]):
            ids += [a["file_id"] for a in message.get("attachments") or () if any(t.get("type") == "code_interpreter" for t in a.get("tools") or ())]
        return list(dict.fromkeys(ids))

    async def image(self, tenant_id: str, file_id: str) -> tuple[str, bytes] | None:
        try:
            row = await self.files.get_row(tenant_id, file_id)
            return row.mime_type or "image/png", await self.files.read_all(tenant_id, file_id)
        except APIError:
            return None

    # ---- ends ----

    async def check_running(self, run: dict) -> None:
        stored = await self.store.run(run["id"])
        if stored is None or stored["status"] not in _RUNNING:
            raise Stop()
        run["metadata"] = stored["metadata"]  # metadata may be updated while the run executes

    async def fail(self, run: dict, error: dict) -> None:
        await self.finish(run, "failed", error=error)

    async def finish(self, run: dict, status: str, *, error: dict | None = None, incomplete: dict | None = None, writes=None) -> None:
        """Ends the run (and whatever step or message was still in progress) in `status`; `writes(conn)`
        adds the caller's last writes to the same batch and returns their events."""
        now = objects.now()
        expected = "cancelling" if status == "cancelled" else ("in_progress", "queued")
        stamp = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at", "incomplete": "completed_at", "expired": None}[status]
        run.update(status=status, required_action=None, expires_at=None, last_error=error, incomplete_details=incomplete)
        if stamp:
            run[stamp] = now
        step_status = {"completed": "completed", "incomplete": "completed"}.get(status, status)
        events: list[tuple[str, dict]] = []
        batch = self.store.batch().save_run(run, expect=expected)
        # Unfinished steps are read before the batch commits: the caller's writes come after and win.
        closed = await close_unfinished(self.store, run["id"], step_status, now, error, batch)
        if writes is not None:
            events = writes(batch)
            written = {data["id"] for _, data in events}
            closed = [step for step in closed if step["id"] not in written]
        if not await batch.commit():
            stopped = await self.store.run(run["id"])
            if stopped is not None and stopped["status"] == "cancelling" and status != "cancelled":
                run.update(stopped)
                return await self.finish(run, "cancelled")
            return
        for event in events:
            await self.publish(run, *event)
        for step in closed:
            await self.publish(run, f"thread.run.step.{step['status']}", step)
        await self.publish(run, f"thread.run.{status}", run)


async def close_unfinished(store: RunStore, run_id: str, status: str, now: int, error: dict | None, batch) -> list[dict]:
    """Steps still in progress end with their run (their messages become incomplete)."""
    closed = []
    for step in await store.steps(run_id):
        if step["status"] != "in_progress":
            continue
        stamp = {"completed": "completed_at", "failed": "failed_at", "cancelled": "cancelled_at", "expired": "expired_at"}[status]
        step.update(status=status, last_error=error if status == "failed" else None)
        step[stamp] = now
        batch.save_step(step)
        if step["type"] == "message_creation":
            message = await store.message(step["step_details"]["message_creation"]["message_id"])
            if message is not None and message["status"] == "in_progress":
                reason = {"cancelled": "run_cancelled", "expired": "run_expired", "failed": "run_failed"}.get(status, "max_tokens")
                message.update(status="incomplete", incomplete_at=now, incomplete_details={"reason": reason})
                batch.save_message(message)
        closed.append(step)
    return closed


def public_step(step: dict, include_content: bool) -> dict:
    """A step as clients see it: file_search internals (the query, the text given to the model) hidden,
    result content only when `include[]` asks for it."""
    if step["type"] != "tool_calls" or not any(c["type"] == "file_search" for c in step["step_details"]["tool_calls"]):
        return step
    calls = [
        {**c, "file_search": builtins.public_file_search(c["file_search"], include_content)} if c["type"] == "file_search" else c
        for c in step["step_details"]["tool_calls"]
    ]
    return {**step, "step_details": {"type": "tool_calls", "tool_calls": calls}}
