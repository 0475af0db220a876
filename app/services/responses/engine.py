"""Executes one response: model calls (streamed) until a reply or a function call for the client, with
the built-in tools run in between (file searches; images drawn by the platform's image service) —
yielding OpenAI's stream events and filling in the Response as it goes.

The first model call is opened before the first event is yielded, so a request the model refuses is
an ordinary HTTP error rather than a stream that fails. A cancel (background responses) is noticed
between chunks through `check`, which raises `Stopped`.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field

from app.core.errors import APIError
from app.core.ids import new_id
from app.core.tokens import count_chat_tokens, count_tokens
from app.inference.providers.offline import images as image_model
from app.inference.providers.offline.text import content_text
from app.services.images import ImagesService
from app.services.responses import items as build
from app.services.responses.events import Events
from app.services.responses.prompt import BUILTIN, chat_params, image_params, usage

log = logging.getLogger("understudy.responses")
MAX_CALLS = 8
CHECK_SECONDS = 0.25


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


@dataclass
class Call:
    id: str
    name: str = ""
    arguments: str = ""
    item: dict | None = None  # the function_call / custom_tool_call output item (None for a built-in tool's call)
    index: int = -1
    custom: bool = False


@dataclass
class Turn:
    message: dict | None = None
    message_index: int = -1
    text: list[str] = field(default_factory=list)
    logprobs: list[dict] = field(default_factory=list)
    calls: dict[int, Call] = field(default_factory=dict)
    finish: str | None = None
    usage: bool = False  # the provider reported the call's usage


class Engine:
    def __init__(self, inference, vector_search, files) -> None:
        self.inference = inference
        self.vector_search = vector_search
        self.files = files
        self.images = ImagesService(None, None)  # base64 answers only (no links to store); tool settings are checked by prompt.py

    async def run(self, tenant_id: str, response: dict, params: dict, messages: list[dict], *, events: Events | None = None, check=None,
                  results: dict | None = None):
        """Yields (type, event); `response` ends completed, incomplete or failed (never raises after the
        first event, except `Stopped`). `results` receives each file search's results by item id (kept
        for a later `include`, whether or not this request included them)."""
        events = events or Events()
        results = {} if results is None else results
        searched: list[dict] = []  # file search results so far (citations)
        ran: list[Call] = []  # built-in tool calls run so far (max_tool_calls)
        used_in = used_out = 0
        budget = params.get("max_output_tokens")
        # Custom (freeform) tools go to providers that speak them; the others' translators know functions only.
        custom = self.inference.provider_for(tenant_id, params["model"]).info.kind in ("offline", "openai")
        stream = await self.inference.stream(tenant_id, "chat_stream", chat_params(params, offered(response, params, 0), messages, budget, custom))
        yield events.lifecycle("created", response)
        if response["status"] == "queued":
            yield events.lifecycle("queued", response)
        response["status"] = "in_progress"
        yield events.lifecycle("in_progress", response)
        checked = time.monotonic()
        try:
            for _ in range(MAX_CALLS):
                if stream is None:
                    left = None if budget is None else budget - used_out
                    if left is not None and left <= 0:
                        response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
                        break
                    if params.get("tool_choice") not in (None, "auto", "none"):
                        params = {**params, "tool_choice": "auto"}  # a forced choice applies to the first call only
                    tools = offered(response, params, len(ran))
                    stream = await self.inference.stream(tenant_id, "chat_stream", chat_params(params, tools, messages, left, custom))
                turn = Turn()
                async for chunk in stream:
                    if check is not None and time.monotonic() - checked > CHECK_SECONDS:
                        await check()
                        checked = time.monotonic()
                    if chunk.get("service_tier"):
                        response["service_tier"] = chunk["service_tier"]  # the tier that served it, as reported
                    if chunk.get("usage"):
                        turn.usage = True
                        used_in += chunk["usage"].get("prompt_tokens") or 0
                        used_out += chunk["usage"].get("completion_tokens") or 0
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            for event in self.on_text(response, turn, delta["content"], events, build.logprobs(choice)):
                                yield event
                        for piece in delta.get("tool_calls") or ():
                            for event in self.on_call(response, turn, piece, events):
                                yield event
                        if choice.get("finish_reason"):
                            turn.finish = choice["finish_reason"]
                stream = None
                if not turn.usage:  # a provider that reports none: counted here
                    used_in += count_chat_tokens(messages)
                    used_out += count_tokens("".join(turn.text) + "".join(c.arguments for c in turn.calls.values()))
                if check is not None:
                    await check()
                truncated = turn.finish == "length"
                for event in self.close_turn(response, turn, truncated, searched, events):
                    yield event
                if truncated:
                    response.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
                    break
                builtins = [c for c in turn.calls.values() if c.item is None]
                if not builtins or len(builtins) < len(turn.calls):
                    response["status"] = "completed"  # a reply, or function calls for the client to run
                    break
                messages.append({"role": "assistant", "content": "".join(turn.text) or None, "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in builtins]})
                ran += builtins
                for call in builtins:
                    if call.name == "image_generation":
                        steps = self.image(response, call, messages, events)
                    else:
                        steps = self.search(tenant_id, response, call, params, searched, messages, events, results)
                    async for event in steps:
                        yield event
            else:
                response.update(status="failed", error={"code": "server_error", "message": f"The response stopped after {MAX_CALLS} model calls."})
        except Stopped:
            raise
        except APIError as error:
            response.update(status="failed", error=error_body(error))
        except Exception:
            log.exception("response %s failed", response["id"])
            response.update(status="failed", error={"code": "server_error", "message": "The server had an error while processing the response."})
        response["usage"] = usage(used_in, used_out)
        if response["status"] == "completed":
            response["completed_at"] = int(time.time())
        yield events.lifecycle(response["status"], response)

    # ---- streaming pieces ----

    def on_text(self, response: dict, turn: Turn, text: str, events: Events, logprobs: list[dict]):
        if turn.message is None:
            turn.message = build.message_item(new_id("msg_"), "", "in_progress")
            turn.message_index = len(response["output"])
            response["output"].append(turn.message)
            yield events.item_added(turn.message_index, turn.message)
            yield events.part_added(turn.message["id"], turn.message_index, build.output_text(""))
        turn.text.append(text)
        turn.logprobs += logprobs
        yield events.text_delta(turn.message["id"], turn.message_index, text, build.delta_logprobs(logprobs))

    def on_call(self, response: dict, turn: Turn, piece: dict, events: Events):
        position = piece.get("index", len(turn.calls))
        custom = piece.get("type") == "custom" or piece.get("custom") is not None
        function = (piece.get("custom") if custom else piece.get("function")) or {}
        call = turn.calls.get(position)
        if call is None:
            call = turn.calls[position] = Call(id=piece.get("id") or new_id("call_"), name=function.get("name") or "", custom=custom)
            builtin = call.name in BUILTIN and not custom and any(t["type"] == call.name for t in response["tools"])
            if not builtin:
                make = build.custom_call_item if custom else build.function_call_item
                call.item = make(new_id("ctc_" if custom else "fc_"), call.id, call.name, "", "in_progress")
                call.index = len(response["output"])
                response["output"].append(call.item)
                yield events.item_added(call.index, call.item)
        elif function.get("name"):
            call.name += function["name"]
        piece_args = function.get("input" if call.custom else "arguments") or ""
        call.arguments += piece_args
        if call.item is not None and piece_args:
            call.item["input" if call.custom else "arguments"] = call.arguments
            yield (events.input_delta if call.custom else events.arguments_delta)(call.item["id"], call.index, piece_args)

    def close_turn(self, response: dict, turn: Turn, truncated: bool, searched: list[dict], events: Events):
        if turn.message is not None:
            text = "".join(turn.text)
            item = build.message_item(turn.message["id"], text, "incomplete" if truncated else "completed", build.citations(text, searched),
                                      turn.logprobs)
            response["output"][turn.message_index] = item
            for position, annotation in enumerate(item["content"][0]["annotations"]):
                yield events.annotation_added(item["id"], turn.message_index, position, annotation)
            yield events.text_done(item["id"], turn.message_index, text, build.delta_logprobs(turn.logprobs))
            yield events.part_done(item["id"], turn.message_index, item["content"][0])
            yield events.item_done(turn.message_index, item)
        for call in turn.calls.values():
            if call.item is None:
                continue
            call.item.update(name=call.name, status="completed")
            if call.custom:
                call.item["input"] = call.arguments
                yield events.input_done(call.item["id"], call.index, call.arguments)
            else:
                call.item["arguments"] = call.arguments
                yield events.arguments_done(call.item["id"], call.index, call.name, call.arguments)
            yield events.item_done(call.index, call.item)

    async def search(self, tenant_id: str, response: dict, call: Call, params: dict, searched: list[dict], messages: list[dict], events: Events,
                     kept: dict):
        tool = next(t for t in response["tools"] if t["type"] == "file_search")
        query = build.query_of(call.arguments)
        item = build.file_search_item(new_id("fs_"), [], "in_progress", None)
        index = len(response["output"])
        response["output"].append(item)
        yield events.item_added(index, item)
        yield events.file_search("in_progress", item["id"], index)
        yield events.file_search("searching", item["id"], index)
        results = await self.file_search(tenant_id, tool, query)
        searched += results
        kept[item["id"]] = results
        included = "file_search_call.results" in (params.get("include") or ())
        item.update(queries=[query], status="completed", results=results if included else None)
        yield events.file_search("completed", item["id"], index)
        yield events.item_done(index, item)
        passages = "\n\n".join(f"[{r['filename']}] {r['text']}" for r in results) or "No results."
        messages.append({"role": "tool", "tool_call_id": call.id, "content": passages})

    async def image(self, response: dict, call: Call, messages: list[dict], events: Events):
        """An image_generation call: the image drawn with the tool's settings (partial previews first when
        it asks for them), kept as the item's base64 `result`; the model is told it was made."""
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
            plan = self.images.plan_generate("", image_params(tool, prompt))
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
            async for name, data in self.images.events(plan):
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

    async def file_search(self, tenant_id: str, tool: dict, query: str) -> list[dict]:
        """The tool's vector stores searched (with its filters and ranking options), best first."""
        limit = min(int(tool.get("max_num_results") or 20), 50)
        ranking = tool.get("ranking_options") or {}
        request = {"query": query or " ", "max_num_results": limit, "ranking_options": {"score_threshold": ranking.get("score_threshold", 0.0)}}
        if tool.get("filters") is not None:
            request["filters"] = tool["filters"]
        found: list[dict] = []
        for store_id in tool["vector_store_ids"]:
            found += (await self.vector_search.search(tenant_id, store_id, request))["data"]
        found.sort(key=lambda r: r["score"], reverse=True)
        return [{"file_id": r["file_id"], "filename": r["filename"], "score": r["score"], "attributes": r.get("attributes") or {},
                 "text": "\n".join(part["text"] for part in r["content"])} for r in found[:limit]]
