"""Responses as the API sees them: create (answered, streamed or backgrounded), retrieve (or replay a
background response's events), delete, cancel, input items and input token counts.

A foreground response executes inside the request and is written once, at its end (a streamed one is
written before its last event is sent, so a client that saw `response.completed` can retrieve it). A
background one is a row first (`queued`) and then the `execute_response` job, which redoes it from
scratch if a restart interrupted it: its output items are replaced in the transaction that ends it.

A background response's events go out on the bus (`response:{id}`) and are kept with the row when it
ends; while it executes, a replay (`GET ?stream=true&starting_after=N`) takes the ones already sent
from the bus's kept history (events are published with `keep=True`), whichever process runs the job.
"""
from __future__ import annotations

import logging
from typing import AsyncIterator

from app.core.errors import APIError, invalid_request
from app.core.ids import check_prefix, new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, list_body
from app.core.tokens import count_chat_tokens
from app.inference.base import RelayResponse, served_tier
from app.services.relay_refs import responses_refs
from app.services import schema_checks
from app.services.responses import compaction
from app.services.responses import code as code_tool
from app.services.responses import items as build
from app.services.responses import relay as relaying
from app.services.agent.tools import BuiltinTools
from app.services.responses.engine import Engine, Stopped, error_body
from app.services.responses.events import TERMINAL, Events
from app.services.responses.prompt import chat_tool_choice, chat_tools, check_tools, new_response
from app.services.responses.store import ResponseStore

log = logging.getLogger("understudy.responses")
END = "understudy.end"  # a bus-only marker: the response stopped without a terminal event (cancelled)
_ACTIVE = ("queued", "in_progress")


def _schemas(params: dict) -> list[schema_checks.Schema]:
    """The schemas the model fills: function tools' parameters and `text.format`."""
    found = [schema_checks.function(f"tools[{i}].parameters", t.get("name"), t.get("parameters"))
             for i, t in enumerate(params.get("tools") or ()) if isinstance(t, dict) and t.get("type") == "function"]
    fmt = (params.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        found.append(schema_checks.output("text.format.schema", fmt.get("name"), fmt.get("schema")))
    return found


def not_found(response_id: str) -> APIError:
    return APIError(f"Response with id '{response_id}' not found.", status_code=404)


class ResponsesService:
    def __init__(self, db, bus, queue, inference, conversations, tools: BuiltinTools, files, relay_scope) -> None:
        self._db, self._bus, self._queue, self._inference = db, bus, queue, inference
        self._scope = relay_scope  # which ids a relayed body may name, and the ids relayed answers bind (app/services/relay_scope.py)
        self._conversations, self._files = conversations, files
        self.store = ResponseStore(db)
        self.engine = Engine(inference, tools)
        self._containers = tools.containers

    # ---- reads ----

    async def _row(self, tenant_id: str, response_id: str):
        row = await self.store.get(response_id, tenant_id)
        if row is None:
            raise not_found(response_id)
        return row

    async def get(self, tenant_id: str, response_id: str, include: list[str] = ()) -> dict:
        row = await self._row(tenant_id, response_id)
        response = row.data
        kept = (row.request or {}).get("search_results") or {}  # file searches' results and code interpreter outputs
        if "file_search_call.results" in include:
            response["output"] = [{**item, "results": kept.get(item["id"], [])} if item["type"] == "file_search_call" else item
                                  for item in response["output"]]
        if code_tool.INCLUDE in include:
            response["output"] = [{**item, "outputs": kept.get(item["id"], [])} if item["type"] == "code_interpreter_call" else item
                                  for item in response["output"]]
        return response

    async def delete(self, tenant_id: str, response_id: str) -> dict:
        await self._row(tenant_id, response_id)
        await self.store.delete(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(self, tenant_id: str, response_id: str, page: Page) -> dict:
        await self._row(tenant_id, response_id)
        data, has_more = await self.store.input_page(tenant_id, response_id, page)
        return list_body(data, has_more)

    # ---- relayed to an upstream that speaks Responses (app/services/responses/relay.py) ----

    async def relay(self, tenant_id: str, path: str, body: dict, raw: bytes) -> RelayResponse | None:
        """`raw` relayed as it is when the body's model routes to a provider that speaks Responses;
        None when the request is answered here (offline model, or translated to chat completions). Every
        id the body names must be the tenant's (a 404 otherwise, the upstream never asked); the ids the
        answer mints are bound to the tenant as they pass."""
        if relaying.speaking_provider(self._inference, body.get("model")) is None or await self._inference.scripted(tenant_id):
            return None
        await self._scope.check(tenant_id, responses_refs(body))
        relayed = await relaying.create(self._inference, path, body, raw)
        return self._scope.watch(tenant_id, "responses", relayed) if path == "/responses" else relayed

    async def relay_by_id(self, tenant_id: str, method: str, response_id: str, suffix: str = "", query: str = "",
                          body: bytes = b"", content_type: str | None = None) -> RelayResponse | None:
        """A request about an id not stored here, relayed to the first provider that speaks Responses
        (whose ids those are); None when there is none."""
        if not await self.store.relayed_by(response_id, tenant_id):
            return None  # never relayed for this tenant: not theirs to ask about
        relayed = await relaying.by_id(self._inference, method, response_id, suffix, query, body, content_type)
        # A background response's output items are minted after its create: bound as its reads pass.
        return relayed if relayed is None else self._scope.watch(tenant_id, "responses", relayed)

    # ---- what a request means ----

    def _check(self, tenant_id: str, params: dict) -> list[dict]:
        if params.get("previous_response_id") and params.get("conversation"):
            raise invalid_request("Parameters 'previous_response_id' and 'conversation' cannot be used together.", param="conversation")
        check_prefix(params.get("previous_response_id"), "resp_", "previous_response_id")
        if params.get("prompt") is not None:
            raise invalid_request("The 'prompt' parameter is not available here: there are no stored prompt templates; send 'instructions' and 'input'.",
                                  param="prompt")
        if params.get("background") and params.get("store") is False:
            raise invalid_request("Background mode requires 'store' to be true.", param="background")
        check_metadata(params.get("metadata"))
        tools = check_tools(params.get("tools") or [])
        chat_tool_choice(params.get("tool_choice"))  # forcing a tool no provider serves is refused
        self._inference.provider_for(tenant_id, params["model"])  # an unknown model is a 404 now
        return tools

    async def _context(self, tenant_id: str, params: dict) -> list[dict]:
        """The items before this request's input: the previous responses' chain, or the conversation's."""
        previous = params.get("previous_response_id")
        if previous:
            chain, current = [], previous
            while current and len(chain) < 1000:
                row = await self.store.get(current, tenant_id)
                if row is None:
                    if current == previous:
                        raise APIError(f"Previous response with id '{previous}' not found.", status_code=404, param="previous_response_id")
                    break
                chain.append(current)
                current = row.data.get("previous_response_id")
            found: list[dict] = []
            for response_id in reversed(chain):
                found += [item for _, item in await self.store.items(response_id)]
            return found
        conversation = _conversation_id(params)
        if conversation:
            await self._conversations.get(tenant_id, conversation, "conversation")
            return list(await self._conversations.items_for_context(tenant_id, conversation))
        return []

    async def _check_containers(self, tenant_id: str, tools: list[dict]) -> None:
        """A code_interpreter tool naming a container: it must be the tenant's (404) and running (400); the
        files an auto container is to copy must be the tenant's Files (404)."""
        for tool in tools:
            if tool["type"] != "code_interpreter":
                continue
            if isinstance(tool["container"], str) and tool["container"] != "auto":
                container = await self._containers.get(tenant_id, tool["container"])
                if container["status"] != "running":
                    raise code_tool.expired(container["id"])
            elif isinstance(tool["container"], dict):
                for file_id in tool["container"].get("file_ids") or ():
                    await self._files.get_row(tenant_id, file_id)

    async def _messages(self, tenant_id: str, params: dict, context: list[dict], inputs: list[dict]) -> list[dict]:
        system = [{"role": "system", "content": params["instructions"]}] if params.get("instructions") else []
        return system + await build.to_messages(context + inputs, lambda file_id: self._file(tenant_id, file_id))

    async def _file(self, tenant_id: str, file_id: str):
        try:
            row = await self._files.get_row(tenant_id, file_id)
            return row.mime_type or "image/png", await self._files.read_all(tenant_id, file_id)
        except APIError:
            return None

    async def compact(self, tenant_id: str, params: dict) -> dict:
        """`POST /v1/responses/compact` (compaction.py): nothing is stored."""
        self._inference.provider_for(tenant_id, params["model"])  # an unknown model is a 404 now
        inputs = build.input_items(params.get("input"))
        context = await self._context(tenant_id, params)
        if not inputs and not context:
            raise invalid_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
        messages = await self._messages(tenant_id, params, context, inputs)
        summary, used_in, used_out = await compaction.summarise(self._inference, tenant_id, params["model"], messages)
        users = [item for item in context + inputs if item.get("type", "message") == "message" and item.get("role") == "user"]
        return compaction.compacted(users, summary, used_in, used_out, served_tier(params.get("service_tier")))

    async def input_tokens(self, tenant_id: str, params: dict) -> dict:
        tools = check_tools(params.get("tools") or [])
        messages = await self._messages(tenant_id, params, await self._context(tenant_id, params), build.input_items(params.get("input")))
        return {"object": "response.input_tokens", "input_tokens": count_chat_tokens(messages, chat_tools(tools) or None)}

    # ---- creating ----

    async def create(self, tenant_id: str, params: dict, streaming: bool):
        """The finished Response, or (streaming) an async iterator of (type, event)."""
        tools = self._check(tenant_id, params)
        await self.engine.tools.check_shell(tenant_id, params.get("tools") or [])  # its skills are this tenant's
        await schema_checks.check_offline_schemas(self._inference, tenant_id, params["model"], _schemas(params))
        inputs = build.input_items(params.get("input"))
        await self._check_containers(tenant_id, tools)
        context = await self._context(tenant_id, params)
        if not inputs and not context and not params.get("instructions"):  # nothing for the model to answer
            raise invalid_request("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
        response = new_response(new_id("resp_"), params, tools, "queued" if params.get("background") else "in_progress")
        if params.get("background"):
            await self.store.insert(response, tenant_id, {"params": params}, inputs)
            # Enqueued now, even if a streaming client leaves at once; events sent before the stream
            # subscribes are replayed from the job's memory (or the row, once it has ended).
            await self._queue.enqueue("execute_response", key=response["id"], response_id=response["id"])
            return self._replay(tenant_id, response["id"], -1) if streaming else response
        messages = await self._messages(tenant_id, params, context, inputs)
        found: dict = {}
        run = self.engine.run(tenant_id, response, params, messages, results=found, container=code_tool.previous_container(context + inputs))
        first = await anext(run)  # the model's refusal of the request is an HTTP error, before any event

        async def events() -> AsyncIterator[tuple[str, dict]]:
            yield first
            async for name, event in run:
                if name in TERMINAL:
                    await self._finish_foreground(tenant_id, response, {"params": params, "search_results": found}, inputs)
                yield name, event

        if streaming:
            return events()
        async for _ in events():
            pass
        return response

    async def _finish_foreground(self, tenant_id: str, response: dict, request: dict, inputs: list[dict]) -> None:
        if response.get("store", True):
            await self.store.insert(response, tenant_id, request, inputs, response["output"])
        await self._append_to_conversation(tenant_id, request["params"], inputs, response)

    async def _append_to_conversation(self, tenant_id: str, params: dict, inputs: list[dict], response: dict) -> None:
        conversation = _conversation_id(params)
        if conversation and response["status"] in ("completed", "incomplete"):
            await self._conversations.append(tenant_id, conversation, inputs + response["output"])

    # ---- background ----

    async def execute(self, response_id: str) -> None:
        """The `execute_response` job: runs (or reruns, after a restart) a background response."""
        row = await self.store.get(response_id)
        if row is None or row.status not in _ACTIVE:
            return
        tenant_id, request, response = row.tenant_id, dict(row.request or {}), row.data
        params = request["params"]
        inputs = [item for kind, item in await self.store.items(response_id) if kind == "input"]
        response.update(output=[], status="in_progress", error=None, incomplete_details=None)
        response.pop("usage", None)
        if not await self.store.save(response, expect=row.status):
            return await self.execute(response_id)  # cancelled (or moved on) meanwhile
        response["status"] = "queued"  # as `response.created` shows it
        channel = f"response:{response_id}"
        live: list[tuple[str, dict]] = []  # this attempt's events, stored with the row when it ends
        await self._bus.forget(channel)  # a retried attempt starts its history afresh

        async def check() -> None:
            stored = await self.store.get(response_id)
            if stored is None or stored.status != "in_progress":
                raise Stopped()

        try:
            context = await self._context(tenant_id, params)
            messages = await self._messages(tenant_id, params, context, inputs)
            found = request["search_results"] = {}
            async for name, event in self.engine.run(tenant_id, response, params, messages, check=check, results=found,
                                                     container=code_tool.previous_container(context + inputs)):
                if name in TERMINAL:
                    request["events"] = live + [(name, event)]
                    if not await self.store.finish(response, tenant_id, request, response["output"], expect="in_progress"):
                        raise Stopped()
                    await self._append_to_conversation(tenant_id, params, inputs, response)
                live.append((name, event))
                await self._bus.publish(channel, (name, event), keep=True)
        except Stopped:
            await self._bus.publish(channel, (END, {}))
        except APIError as error:  # the model refused the request before streaming
            response.update(status="failed", error=error_body(error))
            event = Events(len(live)).lifecycle("failed", response)
            request["events"] = live + [event]
            if await self.store.finish(response, tenant_id, request, [], expect="in_progress"):
                await self._bus.publish(channel, event, keep=True)
            else:
                await self._bus.publish(channel, (END, {}))

    async def cancel(self, tenant_id: str, response_id: str) -> dict:
        row = await self._row(tenant_id, response_id)
        response = row.data
        if not response.get("background"):
            raise invalid_request("Only responses created with background=true can be cancelled.", param=None)
        if row.status == "cancelled":
            return response
        if row.status not in _ACTIVE:
            raise invalid_request(f"Cannot cancel a response with status '{row.status}'.", param=None)
        response["status"] = "cancelled"
        if not await self.store.save(response, expect=row.status):
            return await self.cancel(tenant_id, response_id)
        await self._bus.publish(f"response:{response_id}", (END, {}))
        return response

    async def replay(self, tenant_id: str, response_id: str, starting_after: int | None) -> AsyncIterator[tuple[str, dict]]:
        row = await self._row(tenant_id, response_id)
        if not row.data.get("background"):
            raise invalid_request("Only responses created with background=true can be streamed again.", param="stream")
        return self._replay(tenant_id, response_id, -1 if starting_after is None else starting_after)

    async def _replay(self, tenant_id: str, response_id: str, after: int) -> AsyncIterator[tuple[str, dict]]:
        """Stored (or, while it executes, kept by the bus) events after `after`, then live ones."""
        async with self._bus.subscribe(f"response:{response_id}") as subscription:
            row = await self.store.get(response_id, tenant_id)
            if row is None:
                return
            if row.status not in _ACTIVE:
                for name, event in (row.request or {}).get("events") or ():
                    if event["sequence_number"] > after:
                        yield name, event
                return
            for name, event in await self._bus.kept(f"response:{response_id}"):
                if event["sequence_number"] > after:
                    after = event["sequence_number"]
                    yield name, event
                    if name in TERMINAL:
                        return
            async for name, event in subscription:
                if name == END:
                    return
                if event["sequence_number"] <= after:
                    continue
                after = event["sequence_number"]
                yield name, event
                if name in TERMINAL:
                    return


def _conversation_id(params: dict) -> str | None:
    conversation = params.get("conversation")
    return conversation.get("id") if isinstance(conversation, dict) else conversation
