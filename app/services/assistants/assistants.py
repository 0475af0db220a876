"""Assistants: create, list, retrieve, update, delete.

An assistant is stored whole as its wire object (`data`), so reads return the row as it is. Its model is
checked the way a run would resolve it (the router, then the catalogue for the offline model), so an
assistant that saves is one a run can use.
"""
from __future__ import annotations

import re
import time

from sqlalchemy import bindparam, delete, insert, select, update

from app.core.errors import APIError, invalid_request
from app.core.ids import check_prefix, new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.assistants.tool_resources import ToolResources, check_max_items, check_max_length, check_range, merge, no_object
from app.services.schema_checks import chat_shaped, check_offline_schemas
from storage.db import Database
from storage.models import Assistant
from storage.prepared import Prepared

assistants = Assistant.__table__
_GET = Prepared(select(assistants.c.data).where(assistants.c.id == bindparam("id"), assistants.c.tenant_id == bindparam("tenant_id")))
MAX_NAME, MAX_DESCRIPTION, MAX_INSTRUCTIONS, MAX_TOOLS = 256, 512, 256_000, 128
TOOL_TYPES = ("code_interpreter", "file_search", "function")
FORMAT_TYPES = ("json_object", "json_schema", "text")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def _supported(values) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 2 else " and ".join(quoted)


def precheck(body: dict) -> None:
    """What the SDK TypedDicts' unions would report confusingly (a tool or format of an unknown type),
    checked first with OpenAI's wording."""
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                continue
            if tool.get("type") not in TOOL_TYPES:
                if "type" not in tool:
                    raise invalid_request(f"Missing required parameter: 'tools[{index}].type'.", param=f"tools[{index}].type", code="missing_required_parameter")
                raise invalid_request(f"Invalid value: '{tool.get('type')}'. Supported values are: {_supported(TOOL_TYPES)}.",
                                      param=f"tools[{index}].type", code="invalid_value")
            if tool["type"] == "function" and "function" not in tool:
                raise invalid_request(f"Missing required parameter: 'tools[{index}].function'.", param=f"tools[{index}].function", code="missing_required_parameter")
    fmt = body.get("response_format")
    if isinstance(fmt, str) and fmt != "auto":
        raise invalid_request(f"Invalid value: '{fmt}'. Supported values are: 'auto'.", param="response_format", code="invalid_value")
    if isinstance(fmt, dict) and fmt.get("type") not in FORMAT_TYPES:
        raise invalid_request(f"Invalid value: '{fmt.get('type')}'. Supported values are: {_supported(FORMAT_TYPES)}.",
                              param="response_format.type", code="invalid_value")


def check_tools(tools: list[dict], param: str = "tools") -> list[dict]:
    """The tools as stored and returned: function tools keep their definition (strict defaults to
    false), file_search keeps its options."""
    check_max_items(tools, MAX_TOOLS, param)
    out = []
    for index, tool in enumerate(tools):
        where = f"{param}[{index}]"
        if tool["type"] == "function":
            function = tool["function"]
            check_max_length(function["name"], 64, f"{where}.function.name")
            if not _FUNCTION_NAME.match(function["name"]):
                raise invalid_request(
                    f"Invalid '{where}.function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    param=f"{where}.function.name", code="invalid_value",
                )
            kept = {key: function[key] for key in ("name", "description", "parameters", "strict") if function.get(key) is not None}
            out.append({"type": "function", "function": {"strict": False, **kept}})
        elif tool["type"] == "file_search":
            options = tool.get("file_search")
            if options is None:
                out.append({"type": "file_search"})
                continue
            check_range(options.get("max_num_results"), 1, 50, f"{where}.file_search.max_num_results", "integer")
            check_range((options.get("ranking_options") or {}).get("score_threshold"), 0, 1, f"{where}.file_search.ranking_options.score_threshold")
            out.append({"type": "file_search", "file_search": options})
        else:
            out.append({"type": tool["type"]})
    return out


def _check_fields(params: dict) -> None:
    check_max_length(params.get("name"), MAX_NAME, "name")
    check_max_length(params.get("description"), MAX_DESCRIPTION, "description")
    check_max_length(params.get("instructions"), MAX_INSTRUCTIONS, "instructions")
    check_range(params.get("temperature"), 0, 2, "temperature")
    check_range(params.get("top_p"), 0, 1, "top_p")


class AssistantsService:
    def __init__(self, db: Database, models, vector_stores, files, inference=None) -> None:
        self._db, self._models, self._vector_stores, self._files = db, models, vector_stores, files
        self._inference = inference
        self._resources = ToolResources(files, vector_stores)

    def _check_model(self, tenant_id: str, model: str) -> None:
        try:
            if self._inference is not None:
                self._inference.provider_for(tenant_id, model)
            else:
                self._models.get(tenant_id, model)
        except APIError as error:
            if error.status_code == 404:
                raise invalid_request(f"The requested model '{model}' does not exist.", param="model", code="model_not_found") from None
            raise

    async def _check_schemas(self, tenant_id: str, model: str, params: dict) -> None:
        """Function parameters and a json_schema format the offline model fills: within its bounds."""
        if self._inference is not None:
            await check_offline_schemas(self._inference, tenant_id, model, chat_shaped(params.get("tools"), params.get("response_format")))

    async def get(self, tenant_id: str, assistant_id: str) -> dict:
        check_prefix(assistant_id, "asst_", "assistant_id")
        row = await self._db.fetch_one(_GET, {"id": assistant_id, "tenant_id": tenant_id})
        if row is None:
            raise no_object("assistant", assistant_id, "assistant_id")
        return row.data

    async def create(self, tenant_id: str, params: dict) -> dict:
        _check_fields(params)
        self._check_model(tenant_id, params["model"])
        tools = check_tools(list(params.get("tools") or []))
        await self._check_schemas(tenant_id, params["model"], params)
        metadata = check_metadata(params.get("metadata")) or {}
        await self._resources.check(tenant_id, params.get("tool_resources"))
        now = int(time.time())
        assistant = {
            "id": new_id("asst_"), "object": "assistant", "created_at": now, "name": params.get("name"),
            "description": params.get("description"), "model": params["model"], "instructions": params.get("instructions"),
            "tools": tools, "tool_resources": await self._resources.resolve(tenant_id, params.get("tool_resources")) or {},
            "metadata": metadata, "temperature": _or(params.get("temperature"), 1.0), "top_p": _or(params.get("top_p"), 1.0),
            "response_format": _or(params.get("response_format"), "auto"),
        }
        if params.get("reasoning_effort") is not None:
            assistant["reasoning_effort"] = params["reasoning_effort"]
        async with self._db.begin() as conn:
            await conn.execute(insert(assistants).values(id=assistant["id"], tenant_id=tenant_id, created_at=now, data=assistant))
        return assistant

    async def list(self, tenant_id: str, page: Page) -> dict:
        rows, has_more = await fetch_page(self._db, assistants, page, {"tenant_id": tenant_id}, columns=(assistants.c.id, assistants.c.data))
        return list_body([row.data for row in rows], has_more)

    async def update(self, tenant_id: str, assistant_id: str, params: dict) -> dict:
        assistant = dict(await self.get(tenant_id, assistant_id))
        _check_fields(params)
        if "model" in params:
            self._check_model(tenant_id, params["model"])
            assistant["model"] = params["model"]
        if "tools" in params:
            assistant["tools"] = check_tools(list(params["tools"] or []))
        await self._check_schemas(tenant_id, assistant["model"], params)
        if "metadata" in params:
            assistant["metadata"] = check_metadata(params["metadata"]) or {}
        if "tool_resources" in params:
            await self._resources.check(tenant_id, params["tool_resources"])
            resolved = await self._resources.resolve(tenant_id, params["tool_resources"])
            assistant["tool_resources"] = merge(assistant.get("tool_resources"), resolved) if resolved is not None else {}
        for name in ("name", "description", "instructions"):
            if name in params:
                assistant[name] = params[name]
        for name, default in (("temperature", 1.0), ("top_p", 1.0), ("response_format", "auto")):
            if name in params:
                assistant[name] = _or(params[name], default)
        if "reasoning_effort" in params:
            if params["reasoning_effort"] is None:
                assistant.pop("reasoning_effort", None)
            else:
                assistant["reasoning_effort"] = params["reasoning_effort"]
        async with self._db.begin() as conn:
            await conn.execute(update(assistants).where(assistants.c.id == assistant_id, assistants.c.tenant_id == tenant_id).values(data=assistant))
        return assistant

    async def delete(self, tenant_id: str, assistant_id: str) -> dict:
        await self.get(tenant_id, assistant_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(assistants).where(assistants.c.id == assistant_id, assistants.c.tenant_id == tenant_id))
        return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


def _or(value, default):
    return default if value is None else value
