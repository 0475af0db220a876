"""Executes a run (the `execute_run` job): model turns until a reply, a function call for the client, or
the end — writing steps and messages as it goes and publishing OpenAI's run events on the bus. The turns
themselves are the agent loop's (app/services/agent/loop.py); a `_RunAgent` gives it the run's prompt and
turns what happens into steps, messages and run events.

Resumable by construction: the run's status row is the truth. A job that finds its run queued or in
progress removes what an interrupted attempt left half-done (in-progress steps and their messages) and
asks the model again, so a restart neither loses nor duplicates steps or messages. Status changes are
compare-and-set (run_store.py): a cancel from the API is noticed between chunks and turns.
"""
from __future__ import annotations

import logging

from app.core.errors import APIError
from app.inference.base import UpstreamError
from app.inference.chunks import CallDelta
from app.services.agent.loop import MAX_MODEL_CALLS, AgentLoop, Turn
from app.services.agent.tools import BuiltinTools
from app.services.assistants import builtin_tools as builtins
from app.services.assistants import run_objects as objects
from app.services.assistants.prompt import build_request
from app.services.assistants.run_store import RunStore
from app.services.inference_errors import api_error

log = logging.getLogger("understudy.runs")
_RUNNING = ("in_progress",)


class Stop(Exception):
    """The run left `in_progress` under us (cancelling, expired, deleted): stop writing to it."""


class RunExecutor:
    def __init__(self, store: RunStore, bus, inference, tools: BuiltinTools, threads, assistants, *, expiry_seconds: int) -> None:
        self.store = store
        self.bus = bus
        self.inference = inference
        self.tools = tools
        self.threads = threads
        self.assistants = assistants
        self.expiry_seconds = expiry_seconds  # how long `requires_action` waits for tool outputs

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
            async for event in AgentLoop(self.inference, tenant_id, _RunAgent(self, run, tenant_id)).run():
                await self.publish(run, *event)
        except Stop:
            await self.react_to_stop(run["id"])
        except (APIError, UpstreamError) as error:  # an upstream failing mid-stream is an upstream error too
            error = api_error(error) if isinstance(error, UpstreamError) else error
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


class _RunAgent:
    """One execution of a run as the agent loop drives it: the prompt is rebuilt from the stored thread
    and steps for each model call; text becomes a message_creation step and its message, tool calls a
    tool_calls step whose built-in calls run here and whose function calls stop the run in
    requires_action. Events are yielded after the writes they describe have committed."""

    endpoint = "runs"

    def __init__(self, executor: RunExecutor, run: dict, tenant_id: str) -> None:
        self.x, self.run, self.tenant_id = executor, run, tenant_id
        self.steps: list[dict] = []
        self.message = self.message_step = self.tool_step = None

    async def request(self, number: int) -> dict | None:
        run, store = self.run, self.x.store
        self.message = self.message_step = self.tool_step = None
        self.steps = await store.steps(run["id"])
        params, fits = await build_request(run, await store.thread_messages(run["thread_id"]), self.steps, self.image)
        if not fits:
            await self.x.finish(run, "incomplete", incomplete={"reason": "max_prompt_tokens"})
            return None
        if run.get("max_completion_tokens"):
            left = run["max_completion_tokens"] - ((run.get("usage") or {}).get("completion_tokens") or 0)
            if left <= 0:
                await self.x.finish(run, "incomplete", incomplete={"reason": "max_completion_tokens"})
                return None
            params["max_completion_tokens"] = left
        return params

    async def check(self) -> None:
        await self.x.check_running(self.run)

    def on_chunk(self, chunk: dict) -> None:
        pass

    async def on_text(self, turn: Turn, text: str, choice: dict):
        if self.message is None:
            for event in await self.start_message():
                yield event
        yield "thread.message.delta", objects.message_delta(self.message["id"], text)

    async def on_refusal(self, turn: Turn, refusal: str):
        """A refusal is the message's `refusal` content part (after the text, if any came first)."""
        if self.message is None:
            for event in await self.start_message():
                yield event
        yield "thread.message.delta", objects.refusal_delta(self.message["id"], refusal, 1 if turn.text else 0)

    async def start_message(self) -> list[tuple[str, dict]]:
        self.message = objects.new_run_message(self.run)
        self.message_step = objects.new_step(self.run, "message_creation", objects.message_creation_details(self.message["id"]))
        await self.x.store.batch().insert_step(self.message_step, self.tenant_id).insert_message(self.message, self.tenant_id).commit()
        return [("thread.run.step.created", self.message_step), ("thread.run.step.in_progress", self.message_step),
                ("thread.message.created", self.message), ("thread.message.in_progress", self.message)]

    async def on_call(self, turn: Turn, delta: CallDelta):
        if self.tool_step is None:
            self.tool_step = objects.new_step(self.run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
            await self.x.store.batch().insert_step(self.tool_step, self.tenant_id).commit()
            yield "thread.run.step.created", self.tool_step
            yield "thread.run.step.in_progress", self.tool_step
        call = delta.call
        kind = self.call_type(call.name)
        if kind == "function":
            shown = {"index": call.index, "id": call.id, "type": "function", "function": {"name": delta.name, "arguments": delta.arguments, "output": None}}
        elif kind == "code_interpreter":
            shown = {"index": call.index, "id": call.id, "type": "code_interpreter", "code_interpreter": {"input": delta.arguments, "outputs": []}}
        else:
            shown = {"index": call.index, "id": call.id, "type": "file_search", "file_search": {}}
        yield "thread.run.step.delta", objects.tool_calls_delta(self.tool_step["id"], [shown])

    def call_type(self, name: str) -> str:
        builtin = {t["type"] for t in self.run.get("tools") or () if t["type"] != "function"}
        return name if name in builtin else "function"

    async def end_turn(self, turn: Turn):
        run = self.run
        usage = objects.usage(turn.prompt_tokens, turn.completion_tokens)
        run["usage"] = objects.add_usage(run.get("usage"), usage)
        truncated = turn.truncated
        has_text = self.message is not None or self.tool_step is None
        if self.message is None and self.tool_step is None:  # a reply with no text at all is still a (empty) message
            for event in await self.start_message():
                yield event

        def write_message(batch) -> list[tuple[str, dict]]:
            return self.complete_message(turn, truncated, None if self.tool_step else usage, batch) if has_text else []

        if self.tool_step is not None and not truncated:
            batch = self.x.store.batch()
            events = write_message(batch)
            await batch.commit()
            for event in events:
                yield event
            async for event in self.run_tools(turn, usage):
                yield event
            return
        # The reply, its step and the run's end commit together (one transaction per step, not three).
        if truncated:
            reason = "max_completion_tokens" if run.get("max_completion_tokens") else "max_tokens"
            await self.x.finish(run, "incomplete", incomplete={"reason": reason}, writes=write_message)
        else:
            await self.x.finish(run, "completed", writes=write_message)

    def complete_message(self, turn: Turn, truncated: bool, usage: dict | None, batch) -> list[tuple[str, dict]]:
        """Adds the finished reply and its step to `batch`; returns the events to publish once committed."""
        text = "".join(turn.text)
        searches = [call["file_search"]["results"] for step in self.steps if step["type"] == "tool_calls"
                    for call in step["step_details"]["tool_calls"] if call["type"] == "file_search"]
        message, step, now = self.message, self.message_step, objects.now()
        message["content"] = [objects.text_part(text, builtins.citations(text, searches))] if text or not turn.refusal else []
        if turn.refusal:
            message["content"].append(objects.refusal_part("".join(turn.refusal)))
        if truncated:
            message.update(status="incomplete", incomplete_at=now, incomplete_details={"reason": "max_tokens"})
        else:
            message.update(status="completed", completed_at=now)
        step.update(status="completed", completed_at=now, usage=usage or objects.usage(turn.prompt_tokens, turn.completion_tokens))
        batch.save_message(message).save_step(step)
        return [("thread.message.incomplete" if truncated else "thread.message.completed", message), ("thread.run.step.completed", step)]

    async def run_tools(self, turn: Turn, usage: dict):
        run, step, tools = self.run, self.tool_step, self.x.tools
        search_index = sum(1 for s in self.steps if s["type"] == "tool_calls" for c in s["step_details"]["tool_calls"] if c["type"] == "file_search")
        calls, pending = [], []
        for call in turn.calls.ordered():
            kind = self.call_type(call.name)
            if kind == "function":
                calls.append({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments, "output": None}})
                pending.append({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}})
            elif kind == "file_search":
                options = next((t.get("file_search") or {} for t in run["tools"] if t["type"] == "file_search"), {})
                payload = await builtins.file_search(tools, self.tenant_id, await self.vector_store_ids(), call.arguments, options, search_index)
                search_index += 1
                calls.append({"id": call.id, "type": "file_search", "file_search": payload})
            else:
                payload = await builtins.code_interpreter(tools, self.tenant_id, call.arguments, await self.code_files())
                calls.append({"id": call.id, "type": "code_interpreter", "code_interpreter": payload})
            await self.check()
        step["step_details"]["tool_calls"] = calls
        step["usage"] = usage
        if pending:
            run.update(status="requires_action", expires_at=objects.now() + self.x.expiry_seconds,
                       required_action={"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": pending}})
            if not await self.x.store.batch().save_run(run, expect=_RUNNING).save_step(step).commit():
                raise Stop()
            yield "thread.run.requires_action", run
            return
        step.update(status="completed", completed_at=objects.now())
        await self.x.store.batch().save_step(step).commit()
        yield "thread.run.step.completed", public_step(step, False)
        turn.again = True

    async def exhausted(self):
        await self.x.fail(self.run, objects.server_error(f"The run stopped after {MAX_MODEL_CALLS} model calls without a reply."))
        return
        yield  # (an async generator: `fail` publishes its own events)

    async def owners(self) -> tuple[dict, dict]:
        run, tenant_id = self.run, self.tenant_id
        return await self.x.threads.get(tenant_id, run["thread_id"]), await self.x.assistants.get(tenant_id, run["assistant_id"])

    async def vector_store_ids(self) -> list[str]:
        ids: list[str] = []
        for owner in await self.owners():
            for store_id in ((owner.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or ():
                if store_id not in ids:
                    ids.append(store_id)
        return ids

    async def code_files(self) -> list[str]:
        ids: list[str] = []
        thread, assistant = await self.owners()
        for owner in (assistant, thread):
            ids += ((owner.get("tool_resources") or {}).get("code_interpreter") or {}).get("file_ids") or []
        for message in await self.x.store.thread_messages(self.run["thread_id"]):
            ids += [a["file_id"] for a in message.get("attachments") or () if any(t.get("type") == "code_interpreter" for t in a.get("tools") or ())]
        return list(dict.fromkeys(ids))

    async def image(self, file_id: str) -> tuple[str, bytes] | None:
        files = self.x.tools.files
        try:
            row = await files.get_row(self.tenant_id, file_id)
            return row.mime_type or "image/png", await files.read_all(self.tenant_id, file_id)
        except APIError:
            return None


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
