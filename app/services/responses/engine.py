"""Executes one response on the agent loop (app/services/agent/loop.py): model calls (streamed) until a
reply or a function call for the client, with the built-in tools run in between (file searches; images
drawn by the image service; code run in a container, app/services/responses/code.py) — yielding OpenAI's stream events and filling in the Response as it goes.

The first model call is opened before the first event is yielded, so a request the model refuses is
an ordinary HTTP error rather than a stream that fails. A cancel (background responses) is noticed
between chunks through `check`, which raises `Stopped`.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time

from app.core.errors import APIError
from app.core.ids import new_id
from app.inference.base import UpstreamError
from app.inference.chunks import CallDelta, ToolCall
from app.inference.providers.offline import images as image_model
from app.inference.providers.offline.text import content_text
from app.services.agent.loop import MAX_MODEL_CALLS, AgentLoop, Turn
from app.services.agent.tools import BuiltinTools, ToolFailure
from app.services.inference_errors import api_error
from app.services.responses import items as build
from app.services.responses.code import CodeInterpreter
from app.services.responses.events import Events
from app.services.responses.prompt import BUILTIN, chat_params, image_params, usage
from app.services.responses.shell import describe_skills, shell_steps

log = logging.getLogger("understudy.responses")


def error_body(error: APIError) -> dict:
    code = "rate_limit_exceeded" if error.status_code == 429 else "invalid_prompt" if error.status_code < 500 else "server_error"
    return {"code": code, "message": error.message}


def offered(response: dict, params: dict, calls: int) -> list[dict]:
    """The tools offered to the model: without the built-in ones once `max_tool_calls` of them ran."""
    limit = params.get("max_tool_calls")
    if limit is not None and calls >= limit:
        return [t for t in response["tools"] if t["type"] not in BUILTIN]
    return response["tools"]


class Stopped(Exception):
    """The response was cancelled under us: stop without writing."""


class Engine:
    def __init__(self, inference, tools: BuiltinTools) -> None:
        self.inference = inference
        self.tools = tools
        self.images = tools.images  # the image tool draws with it (base64 results; its settings are checked by prompt.py)

    async def run(self, tenant_id: str, response: dict, params: dict, messages: list[dict], *, events: Events | None = None, check=None,
                  results: dict | None = None, container: str | None = None):
        """Yields (type, event); `response` ends completed, incomplete or failed (never raises after the
        first event, except `Stopped`). `results` receives each file search's results and each code
        interpreter call's outputs by item id (kept for a later `include`, whether or not this request
        included them). `container`: the one the previous responses ran code in (reused by "auto")."""
        events = events or Events()
        agent = _ResponseAgent(self, tenant_id, response, params, messages, events, check, {} if results is None else results, container)
        loop = AgentLoop(self.inference, tenant_id, agent)
        await loop.open()
        yield events.lifecycle("created", response)
        if response["status"] == "queued":
            yield events.lifecycle("queued", response)
        response["status"] = "in_progress"
        yield events.lifecycle("in_progress", response)
        try:
            async for event in loop.run():
                yield event
        except Stopped:
            raise
        except APIError as error:
            response.update(status="failed", error=error_body(error))
        except ToolFailure as error:  # a built-in tool could not run at all (no sandbox here, say)
            response.update(status="failed", error={"code": "server_error", "message": str(error)})
        except UpstreamError as error:  # the model's stream broke after it began
            response.update(status="failed", error=error_body(api_error(error)))
        except Exception:
            log.exception("response %s failed", response["id"])
            response.update(status="failed", error={"code": "server_error", "message": "The server had an error while processing the response."})
        response["usage"] = usage(agent.used_in, agent.used_out)
        if response["status"] == "completed":
            response["completed_at"] = int(time.time())
        yield events.lifecycle(response["status"], response)


class _ResponseAgent:
    """One response as the agent loop drives it: the conversation so far is `messages` (built-in tool
    results appended as they run); text becomes a message output item, calls function_call /
    custom_tool_call items, and built-in calls their own items, each with its stream events."""

    endpoint = "responses"

    def __init__(self, engine: Engine, tenant_id: str, response: dict, params: dict, messages: list[dict], events: Events, check,
                 results: dict, container: str | None) -> None:
        self.engine, self.tenant_id, self.response, self.params, self.messages = engine, tenant_id, response, params, messages
        self.events, self._check, self.results = events, check, results
        self.code = CodeInterpreter(engine.tools, tenant_id, response, params, events, results, container)
        self.searched: list[dict] = []  # file search results so far (citations)
        self.ran = 0  # built-in tool calls run so far (max_tool_calls)
        self.skill_note: str | None = None  # the shell tool's skills, described once
        self.shell_container: str | None = None  # the container a `container_auto` shell made, at its first call
        self.used_in = self.used_out = 0
        self.budget = params.get("max_output_tokens")
        # Custom (freeform) tools go to providers that speak them; the others' translators know functions only.
        self.custom = engine.inference.provider_for(tenant_id, params["model"]).info.kind in ("offline", "openai")
        self._reset()

    def _reset(self) -> None:
        self.message: dict | None = None
        self.message_index = -1
        self.parts: list[str] = []  # the message's content parts as they opened: "text", "refusal"
        self.logprobs: list[dict] = []
        self.items: dict[int, tuple[dict, int]] = {}  # call index -> (its output item, output index); built-ins have none

    async def request(self, number: int) -> dict | None:
        self._reset()
        params = self.params
        left = None if self.budget is None else self.budget - self.used_out
        if number:
            if left is not None and left <= 0:
                self.response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
                return None
            if params.get("tool_choice") not in (None, "auto", "none"):
                params = self.params = {**params, "tool_choice": "auto"}  # a forced choice applies to the first call only
        chat = chat_params(params, offered(self.response, params, self.ran), self.messages, left, self.custom)
        await describe_skills(self, chat)
        return chat

    async def check(self) -> None:
        if self._check is not None:
            await self._check()

    def on_chunk(self, chunk: dict) -> None:
        if chunk.get("service_tier"):
            self.response["service_tier"] = chunk["service_tier"]  # the tier that served it, as reported

    def _open_part(self, kind: str, part: dict):
        response, events = self.response, self.events
        if self.message is None:
            self.message = build.message_item(new_id("msg_"), "", "in_progress")
            self.message_index = len(response["output"])
            response["output"].append(self.message)
            yield events.item_added(self.message_index, self.message)
        if kind not in self.parts:
            self.parts.append(kind)
            yield events.part_added(self.message["id"], self.message_index, part, self.parts.index(kind))

    async def on_text(self, turn: Turn, text: str, choice: dict):
        logprobs = build.logprobs(choice)
        for event in self._open_part("text", build.output_text("")):
            yield event
        self.logprobs += logprobs
        yield self.events.text_delta(self.message["id"], self.message_index, text, build.delta_logprobs(logprobs))

    async def on_refusal(self, turn: Turn, text: str):
        """A refusal is the message's `refusal` part, streamed as `response.refusal.delta`."""
        for event in self._open_part("refusal", {"type": "refusal", "refusal": ""}):
            yield event
        yield self.events.refusal_delta(self.message["id"], self.message_index, self.parts.index("refusal"), text)

    async def on_call(self, turn: Turn, delta: CallDelta):
        call, response, events = delta.call, self.response, self.events
        if delta.new:
            builtin = call.name in BUILTIN and not call.custom and any(t["type"] == call.name for t in response["tools"])
            if builtin and call.name == "code_interpreter":  # its item opens as the model starts writing the code
                async for event in self.code.begin(call.index, new_id("ci_")):
                    yield event
            if not builtin:
                make = build.custom_call_item if call.custom else build.function_call_item
                item = make(new_id("ctc_" if call.custom else "fc_"), call.id, call.name, "", "in_progress")
                self.items[call.index] = (item, len(response["output"]))
                response["output"].append(item)
                yield events.item_added(self.items[call.index][1], item)
        if call.index in self.code.calls and delta.arguments:
            for event in self.code.stream(call.index, call.arguments):
                yield event
        if call.index in self.items and delta.arguments:
            item, index = self.items[call.index]
            item["input" if call.custom else "arguments"] = call.arguments
            yield (events.input_delta if call.custom else events.arguments_delta)(item["id"], index, delta.arguments)

    async def end_turn(self, turn: Turn):
        response = self.response
        self.used_in += turn.prompt_tokens
        self.used_out += turn.completion_tokens
        for event in self.close_turn(turn):
            yield event
        if turn.truncated:
            response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
            return
        calls = turn.calls.ordered()
        builtins = [c for c in calls if c.index not in self.items]
        if not builtins or len(builtins) < len(calls):
            response["status"] = "completed"  # a reply, or function calls for the client to run
            return
        self.messages.append({"role": "assistant", "content": "".join(turn.text) or None, "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in builtins]})
        self.ran += len(builtins)
        for call in builtins:
            if call.name == "code_interpreter":
                steps = self.code.run(call.index, call.arguments, self.messages, call.id)
            else:
                steps = self.image(call) if call.name == "image_generation" else self.shell(call) if call.name == "shell" else self.search(call)
            async for event in steps:
                yield event
        turn.again = True

    async def exhausted(self):
        self.response.update(status="failed", error={"code": "server_error", "message": f"The response stopped after {MAX_MODEL_CALLS} model calls."})
        return
        yield  # (an async generator: the engine yields the final lifecycle event)

    def close_turn(self, turn: Turn):
        response, events = self.response, self.events
        if self.message is not None:
            text = "".join(turn.text)
            item = build.message_item(self.message["id"], text, "incomplete" if turn.truncated else "completed", build.citations(text, self.searched) + self.code.citations(text),
                                      self.logprobs)
            parts = {"text": item["content"][0], "refusal": {"type": "refusal", "refusal": "".join(turn.refusal)}}
            item["content"] = [parts[kind] for kind in self.parts]
            response["output"][self.message_index] = item
            for position, kind in enumerate(self.parts):
                part = parts[kind]
                if kind == "text":
                    for number, annotation in enumerate(part["annotations"]):
                        yield events.annotation_added(item["id"], self.message_index, number, annotation)
                    yield events.text_done(item["id"], self.message_index, text, build.delta_logprobs(self.logprobs))
                else:
                    yield events.refusal_done(item["id"], self.message_index, position, part["refusal"])
                yield events.part_done(item["id"], self.message_index, part, position)
            yield events.item_done(self.message_index, item)
        for call in turn.calls.ordered():
            if call.index not in self.items:
                continue
            item, index = self.items[call.index]
            item.update(name=call.name, status="completed")
            if call.custom:
                item["input"] = call.arguments
                yield events.input_done(item["id"], index, call.arguments)
            else:
                item["arguments"] = call.arguments
                yield events.arguments_done(item["id"], index, call.name, call.arguments)
            yield events.item_done(index, item)

    async def search(self, call: ToolCall):
        response, events, messages = self.response, self.events, self.messages
        tool = next(t for t in response["tools"] if t["type"] == "file_search")
        query = build.query_of(call.arguments)
        item = build.file_search_item(new_id("fs_"), [], "in_progress", None)
        index = len(response["output"])
        response["output"].append(item)
        yield events.item_added(index, item)
        yield events.file_search("in_progress", item["id"], index)
        yield events.file_search("searching", item["id"], index)
        results = await self.file_search(tool, query)
        self.searched += results
        self.results[item["id"]] = results
        included = "file_search_call.results" in (self.params.get("include") or ())
        item.update(queries=[query], status="completed", results=results if included else None)
        yield events.file_search("completed", item["id"], index)
        yield events.item_done(index, item)
        passages = "\n\n".join(f"[{r['filename']}] {r['text']}" for r in results) or "No results."
        messages.append({"role": "tool", "tool_call_id": call.id, "content": passages})

    async def image(self, call: ToolCall):
        """An image_generation call: the image drawn with the tool's settings (partial previews first when
        it asks for them), kept as the item's base64 `result`; the model is told it was made."""
        response, events, messages, images = self.response, self.events, self.messages, self.engine.images
        tool = next(t for t in response["tools"] if t["type"] == "image_generation")
        prompt = build.prompt_of(call.arguments).strip()
        if not prompt:  # a model that called with no prompt: what the user asked for
            prompt = next((content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "") or "An image."
        item = build.image_call_item(new_id("ig_"), "in_progress")
        index = len(response["output"])
        response["output"].append(item)
        yield events.item_added(index, item)
        yield events.image_generation("in_progress", item["id"], index)
        try:
            plan = images.plan_generate("", image_params(tool, prompt))
        except APIError as error:  # the tool's settings were checked: only the model's prompt can be refused here
            item.update(status="failed", error={"code": error.code, "message": error.message, "param": error.param, "type": error.type})
            yield events.item_done(index, item)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"The image could not be generated: {error.message}"})
            return
        settings = {"background": plan.background, "output_format": plan.fmt, "quality": plan.quality, "size": f"{plan.width}x{plan.height}"}
        item["status"] = "generating"
        yield events.image_generation("generating", item["id"], index)
        result = None
        if plan.partial_images:
            async for name, data in images.events(plan):
                if name.endswith(".partial_image"):
                    yield events.partial_image(item["id"], index, data["b64_json"], data["partial_image_index"], settings)
                else:
                    result = data["b64_json"]
        else:
            result = base64.b64encode(await asyncio.to_thread(image_model.render_bytes, plan, 0)).decode()
        revised = image_model.revised_prompt(plan, 0)
        item.update(status="completed", result=result, action="generate", revised_prompt=revised, **settings)
        yield events.image_generation("completed", item["id"], index)
        yield events.item_done(index, item)
        messages.append({"role": "tool", "tool_call_id": call.id, "content":
                         f"The image ({settings['size']}, {plan.fmt}) was generated and shown to the user. Revised prompt: {revised}"})

    def shell(self, call: ToolCall):
        return shell_steps(self, call)  # responses/shell.py: the shell_call and shell_call_output items

    async def file_search(self, tool: dict, query: str) -> list[dict]:
        """The tool's vector stores searched (with its filters and ranking options), best first."""
        ranking = tool.get("ranking_options") or {}
        found = await self.engine.tools.file_search(self.tenant_id, tool["vector_store_ids"], query, limit=min(int(tool.get("max_num_results") or 20), 50),
                                                    score_threshold=ranking.get("score_threshold", 0.0), filters=tool.get("filters"))
        return [{"file_id": r["file_id"], "filename": r["filename"], "score": r["score"], "attributes": r.get("attributes") or {},
                 "text": "\n".join(part["text"] for part in r["content"])} for r in found]
