"""Conversations and their items: create (with initial items), retrieve, update metadata, delete; items
added, listed, retrieved and deleted; and, for the Responses engine, a conversation's items as context
and appending a turn's items.

Items arrive as Responses *input* items and are stored in their *output* shapes (what OpenAI returns
for them): every item gets an id with OpenAI's prefix, messages get content parts (a string becomes one
`input_text` part, or `output_text` for the assistant) and a status, and call items a status when their
output shape requires one. The item types and which need a status are read off the SDK's own
`ConversationItem` union, so a new item type in the SDK is handled without a change here.
"""
from __future__ import annotations

import time
import typing

from openai.types.conversations.conversation_item import ConversationItem as _SDKItem
from openai.types.responses.response_input_item_param import ResponseInputItemParam
from openai.types.responses import (
    response_input_file_param, response_input_image_param, response_input_text_param, response_output_refusal_param, response_output_text_param,
)
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError, invalid_request
from app.core.ids import check_prefix, new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.core.validation import validate_params
from storage.db import Database
from storage.models import Conversation, ConversationItem, ResponseItem
from storage.prepared import Prepared

conversations = Conversation.__table__
items_table = ConversationItem.__table__
response_items = ResponseItem.__table__

MAX_ITEMS = 20
_GET = Prepared(select(conversations.c.data).where(conversations.c.id == bindparam("id"), conversations.c.tenant_id == bindparam("tenant_id")))
_ITEM = Prepared(select(items_table.c.data).where(
    items_table.c.conversation_id == bindparam("conversation_id"), items_table.c.id == bindparam("id"), items_table.c.tenant_id == bindparam("tenant_id"),
))
_ALL_ITEMS = Prepared(select(items_table.c.data).where(
    items_table.c.conversation_id == bindparam("conversation_id"), items_table.c.tenant_id == bindparam("tenant_id"),
).order_by(items_table.c.seq.asc()))
# `item_reference` inputs: an item this tenant already has, in a conversation or a stored response.
_REF_ITEM = Prepared(select(items_table.c.data).where(items_table.c.id == bindparam("id"), items_table.c.tenant_id == bindparam("tenant_id")).limit(1))
_REF_RESPONSE_ITEM = Prepared(select(response_items.c.data).where(
    response_items.c.id == bindparam("id"), response_items.c.tenant_id == bindparam("tenant_id"),
).limit(1))

_PREFIX = {
    "message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "file_search_call": "fs_", "web_search_call": "ws_",
    "image_generation_call": "ig_", "computer_call": "cu_", "computer_call_output": "cuo_", "tool_search_call": "tsc_",
    "tool_search_output": "tso_", "additional_tools": "at_", "configuration_update": "cfg_", "reasoning": "rs_", "program": "prg_",
    "program_output": "prgo_", "compaction": "cmp_", "code_interpreter_call": "ci_", "local_shell_call": "lsh_",
    "local_shell_call_output": "lsho_", "shell_call": "sh_", "shell_call_output": "sho_", "apply_patch_call": "apc_",
    "apply_patch_call_output": "apco_", "mcp_list_tools": "mcpl_", "mcp_approval_request": "mcpr_", "mcp_approval_response": "mcpa_",
    "mcp_call": "mcp_", "custom_tool_call": "ctc_", "custom_tool_call_output": "ctco_",
}


def _item_models() -> dict[str, type]:
    models = {}
    for model in typing.get_args(typing.get_args(_SDKItem)[0]):
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        models[kind] = model
    return models


def _input_types() -> dict[str, type]:
    """The SDK's input item TypedDicts by `type` (messages, three of them, are left to the whole union)."""
    types = {}
    for params_type in typing.get_args(ResponseInputItemParam):
        hint = typing.get_type_hints(params_type)["type"]
        while typing.get_origin(hint) is typing.Union:
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        kind = typing.get_args(hint)[0]
        if kind != "message":
            types[kind] = params_type
    return types


_MODELS = _item_models()
_INPUT_TYPES = _input_types()
ITEM_TYPES = tuple(_MODELS)
_NEEDS_STATUS = {kind for kind, model in _MODELS.items() if "status" in model.model_fields and model.model_fields["status"].is_required()}
# Fields OpenAI leaves out (null) unless the caller asks for them with `include`.
_INCLUDABLE = {
    "file_search_call": ("file_search_call.results", "results"),
    "code_interpreter_call": ("code_interpreter_call.outputs", "outputs"),
    "reasoning": ("reasoning.encrypted_content", "encrypted_content"),
}


def no_conversation(conversation_id: str) -> APIError:
    return APIError(f"Conversation with id '{conversation_id}' not found.", status_code=404, param="conversation_id")


def no_item(item_id: str) -> APIError:
    return APIError(f"Item with id '{item_id}' not found.", status_code=404, param="item_id")


def _part(part: dict) -> dict:
    part = dict(part)
    kind = part.get("type")
    if kind == "output_text":
        part.setdefault("annotations", [])
        part.setdefault("logprobs", [])
    elif kind == "input_image":
        part.setdefault("detail", "auto")
        part.setdefault("file_id", None)
        part.setdefault("image_url", None)
    return part


def _message(item: dict) -> dict:
    role, content = item.get("role", "user"), item.get("content")
    if isinstance(content, str):
        content = [_part({"type": "output_text", "text": content})] if role == "assistant" else [{"type": "input_text", "text": content}]
    else:
        content = [_part(p) for p in content or ()]
    out = {"id": item.get("id") or new_id("msg_"), "type": "message", "status": item.get("status") or "completed", "role": role, "content": content}
    if item.get("phase") is not None:
        out["phase"] = item["phase"]
    return out


def is_reference(item: dict) -> bool:
    """`{"type": "item_reference", "id": …}`, or just `{"id": …}` (the type is optional)."""
    return item.get("type") == "item_reference" or (item.get("type") is None and "id" in item and "role" not in item and "content" not in item)


def normalize(item: dict, param: str = "items[0]") -> dict:
    """One input item in its stored (output) shape, with an id. (`item_reference`s are resolved before.)"""
    kind = item.get("type") or "message"
    if kind == "message":
        return _message(item)
    if kind not in _PREFIX and kind not in _MODELS:
        raise invalid_request(f"Invalid value: '{kind}'. Items of this type cannot be added to a conversation.", param=f"{param}.type", code="invalid_value")
    out = {**item, "id": item.get("id") or new_id(_PREFIX.get(kind, "item_"))}
    if kind in _NEEDS_STATUS and not out.get("status"):
        out["status"] = "completed"
    return out


def view(item: dict, include: tuple[str, ...] = ()) -> dict:
    """An item as returned: fields behind an `include` value left out unless asked for."""
    hidden = _INCLUDABLE.get(item.get("type"))
    if hidden is not None and hidden[0] not in include and item.get(hidden[1]) is not None:
        item = {**item, hidden[1]: None}
    if item.get("type") == "web_search_call" and "web_search_call.action.sources" not in include:
        action = item.get("action")
        if isinstance(action, dict) and "sources" in action:
            item = {**item, "action": {k: v for k, v in action.items() if k != "sources"}}
    return item


def check_items(items, param: str = "items") -> list:
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid_request(f"Invalid type for '{param}': expected an array, but got {type(items).__name__} instead.", param=param, code="invalid_type")
    if len(items) > MAX_ITEMS:
        raise invalid_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length {MAX_ITEMS}, but got an array with length {len(items)} instead.",
            param=param, code="array_above_max_length",
        )
    for index, item in enumerate(items):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise invalid_request(f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type")
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            raise invalid_request(f"Invalid type for '{where}.type': expected a string.",
                                  param=f"{where}.type", code="invalid_type")
        if kind is not None and kind not in ITEM_TYPES and kind != "item_reference" or kind == "compaction_trigger":
            supported = ", ".join(f"'{k}'" for k in (*ITEM_TYPES, "item_reference"))
            raise invalid_request(f"Invalid value: '{kind}'. Supported values are: {supported}.", param=f"{where}.type", code="invalid_value")
        if is_reference(item):
            _validate_within(_INPUT_TYPES["item_reference"], item, where)
        elif kind in (None, "message"):
            if isinstance(item.get("content"), list):
                _check_parts(item["content"], f"{where}.content")
        else:
            _validate_within(_INPUT_TYPES[kind], item, where)
    return items


_PART_TYPES = {
    "input_text": response_input_text_param.ResponseInputTextParam, "input_image": response_input_image_param.ResponseInputImageParam,
    "input_file": response_input_file_param.ResponseInputFileParam, "output_text": response_output_text_param.ResponseOutputTextParam,
    "refusal": response_output_refusal_param.ResponseOutputRefusalParam,
}


def _check_parts(parts: list, param: str) -> None:
    """Message content parts, each checked against its own SDK type: the SDK's item union would
    otherwise report its first branch (string content) instead of the part at fault."""
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise invalid_request(f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type")
        kind = part.get("type")
        if kind is None:
            raise invalid_request(f"Missing required parameter: '{where}.type'.", param=f"{where}.type", code="missing_required_parameter")
        if not isinstance(kind, str):
            raise invalid_request(f"Invalid type for '{where}.type': expected a string.",
                                  param=f"{where}.type", code="invalid_type")
        if kind not in _PART_TYPES:
            supported = ", ".join(f"'{k}'" for k in _PART_TYPES)
            raise invalid_request(f"Invalid value: '{kind}'. Supported values are: {supported}.", param=f"{where}.type", code="invalid_value")
        _validate_within(_PART_TYPES[kind], part, where)


def _validate_within(params_type, value: dict, where: str) -> None:
    """`validate_params` on a nested object, its errors naming the full path."""
    try:
        validate_params(params_type, value)
    except APIError as error:
        if error.param:
            error.message = error.message.replace(f"'{error.param}'", f"'{where}.{error.param}'")
            error.param = f"{where}.{error.param}"
        raise


class ConversationsService:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- conversations ----

    async def get(self, tenant_id: str, conversation_id: str, param: str = "conversation_id") -> dict:
        check_prefix(conversation_id, "conv_", param)
        row = await self._db.fetch_one(_GET, {"id": conversation_id, "tenant_id": tenant_id})
        if row is None:
            raise no_conversation(conversation_id)
        return row.data

    async def create(self, tenant_id: str, params: dict) -> dict:
        metadata = check_metadata(params.get("metadata")) or {}
        made = await self._prepare(tenant_id, check_items(params.get("items")))
        now = int(time.time())
        conversation = {"id": new_id("conv_"), "object": "conversation", "created_at": now, "metadata": metadata}
        async with self._db.begin() as conn:
            await conn.execute(insert(conversations).values(id=conversation["id"], tenant_id=tenant_id, created_at=now, data=conversation))
            await self._write(conn, tenant_id, conversation["id"], made, now)
        return conversation

    async def update(self, tenant_id: str, conversation_id: str, params: dict) -> dict:
        conversation = dict(await self.get(tenant_id, conversation_id))
        conversation["metadata"] = check_metadata(params.get("metadata")) or {}
        async with self._db.begin() as conn:
            await conn.execute(update(conversations).where(conversations.c.id == conversation_id, conversations.c.tenant_id == tenant_id)
                               .values(data=conversation))
        return conversation

    async def delete(self, tenant_id: str, conversation_id: str) -> dict:
        await self.get(tenant_id, conversation_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(items_table).where(items_table.c.conversation_id == conversation_id, items_table.c.tenant_id == tenant_id))
            await conn.execute(delete(conversations).where(conversations.c.id == conversation_id, conversations.c.tenant_id == tenant_id))
        return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

    # ---- items ----

    async def add_items(self, tenant_id: str, conversation_id: str, items, include: tuple[str, ...] = ()) -> dict:
        """`POST /conversations/{id}/items`: the created items as a list body."""
        await self.get(tenant_id, conversation_id)
        made = await self._prepare(tenant_id, check_items(items))
        async with self._db.begin() as conn:
            await self._write(conn, tenant_id, conversation_id, made, int(time.time()))
        return list_body([view(item, include) for item in made], False)

    async def list_items(self, tenant_id: str, conversation_id: str, page: Page, include: tuple[str, ...] = ()) -> dict:
        await self.get(tenant_id, conversation_id)
        filters = {"tenant_id": tenant_id, "conversation_id": conversation_id}
        rows, has_more = await fetch_page(self._db, items_table, page, filters, columns=(items_table.c.id, items_table.c.data))
        return list_body([view(row.data, include) for row in rows], has_more)

    async def get_item(self, tenant_id: str, conversation_id: str, item_id: str, include: tuple[str, ...] = ()) -> dict:
        await self.get(tenant_id, conversation_id)
        row = await self._db.fetch_one(_ITEM, {"conversation_id": conversation_id, "id": item_id, "tenant_id": tenant_id})
        if row is None:
            raise no_item(item_id)
        return view(row.data, include)

    async def delete_item(self, tenant_id: str, conversation_id: str, item_id: str) -> dict:
        """Removes the item; OpenAI answers with the conversation."""
        await self.get_item(tenant_id, conversation_id, item_id)
        conversation = await self.get(tenant_id, conversation_id)
        async with self._db.begin() as conn:
            await conn.execute(delete(items_table).where(
                items_table.c.conversation_id == conversation_id, items_table.c.id == item_id, items_table.c.tenant_id == tenant_id,
            ))
        return conversation

    # ---- for the Responses engine ----

    async def items_for_context(self, tenant_id: str, conversation_id: str) -> list[dict]:
        """Every item of the conversation, oldest first, in full (no `include` filtering)."""
        await self.get(tenant_id, conversation_id)
        return [row.data for row in await self._db.fetch_all(_ALL_ITEMS, {"conversation_id": conversation_id, "tenant_id": tenant_id})]

    async def append(self, tenant_id: str, conversation_id: str, items: list[dict]) -> list[dict]:
        """Items (input or output shapes) normalised and stored in order; returns them as stored.

        Idempotent: an item whose id the conversation already holds is not written again, so a background
        response re-run after a restart (or input that repeats a stored item) appends nothing twice."""
        await self.get(tenant_id, conversation_id)
        made = await self._prepare(tenant_id, list(items))
        ids = [item["id"] for item in made]
        existing = set()
        if ids:
            rows = await self._db.fetch_all(select(items_table.c.id).where(
                items_table.c.conversation_id == conversation_id, items_table.c.tenant_id == tenant_id, items_table.c.id.in_(ids),
            ))
            existing = {row.id for row in rows}
        async with self._db.begin() as conn:
            await self._write(conn, tenant_id, conversation_id, [item for item in made if item["id"] not in existing], int(time.time()))
        return made

    # ---- helpers ----

    async def _prepare(self, tenant_id: str, items: list, param: str = "items") -> list[dict]:
        out, seen = [], set()
        for index, item in enumerate(items):
            where = f"{param}[{index}]"
            if is_reference(item):
                item = await self._referenced(tenant_id, item.get("id"), where)
            made = normalize(item, where)
            if made["id"] in seen:
                raise invalid_request(f"Duplicate item id '{made['id']}' in '{param}'.", param=f"{where}.id", code="duplicate_item_id")
            seen.add(made["id"])
            out.append(made)
        return out

    async def _referenced(self, tenant_id: str, item_id, where: str) -> dict:
        for query in (_REF_ITEM, _REF_RESPONSE_ITEM):
            row = await self._db.fetch_one(query, {"id": item_id, "tenant_id": tenant_id})
            if row is not None:
                return dict(row.data)
        raise invalid_request(f"Item with id '{item_id}' not found.", param=f"{where}.id", code="invalid_value")

    async def _write(self, conn, tenant_id: str, conversation_id: str, made: list[dict], now: int) -> None:
        try:
            for item in made:
                await conn.execute(insert(items_table).values(
                    id=item["id"], conversation_id=conversation_id, tenant_id=tenant_id, created_at=now, data=item,
                ))
        except IntegrityError:
            raise invalid_request("An item with one of these ids already exists in the conversation.", param="items", code="duplicate_item_id") from None
