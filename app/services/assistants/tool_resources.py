"""`tool_resources` of assistants and threads, and the checks the assistants' CRUD objects share.

Stored as OpenAI returns it: `{"code_interpreter": {"file_ids": [...]}, "file_search": {"vector_store_ids":
[...]}}`, only the keys given. An inline `file_search.vector_stores` entry is created as a real vector store
(through the vector stores service) and recorded by id, as OpenAI does; stores made this way for threads,
or for a message's file_search attachments, expire after 7 idle days like OpenAI's thread helpers.
Every referenced file and store is checked before anything is created, so a bad id leaves nothing behind.
"""
from __future__ import annotations

from app.core.bounds import check_value
from app.core.errors import APIError, invalid_request

MAX_CODE_FILES = 20
MAX_VECTOR_STORES = 1
THREAD_STORE_EXPIRY = {"anchor": "last_active_at", "days": 7}


def no_object(kind: str, object_id: str, param: str | None) -> APIError:
    """OpenAI's 404 for the Assistants API's objects: "No thread found with id 'thread_x'."."""
    return APIError(f"No {kind} found with id '{object_id}'.", status_code=404, param=param)


def check_max_length(value: str | None, maximum: int, param: str) -> None:
    if value is not None and len(value) > maximum:
        raise invalid_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length {maximum}, but got a string with length {len(value)} instead.",
            param=param, code="string_above_max_length",
        )


def check_max_items(items: list, maximum: int, param: str) -> None:
    if len(items) > maximum:
        raise invalid_request(
            f"Invalid '{param}': array too long. Expected an array with maximum length {maximum}, but got an array with length {len(items)} instead.",
            param=param, code="array_above_max_length",
        )


def check_range(value, low: float, high: float, param: str, kind: str = "decimal") -> None:
    check_value(value, kind, low, high, param)


async def check_file(files, tenant_id: str, file_id: str, param: str) -> None:
    """404 for a file the tenant does not have, naming where in the body it was referenced."""
    try:
        await files.get_row(tenant_id, file_id)
    except APIError as error:
        if error.status_code == 404:
            raise APIError(error.message, status_code=404, param=param) from None
        raise


async def check_vector_store(vector_stores, tenant_id: str, store_id: str, param: str) -> None:
    try:
        await vector_stores.row(tenant_id, store_id)
    except APIError as error:
        if error.status_code == 404:
            raise APIError(error.message, status_code=404, param=param) from None
        raise


class ToolResources:
    """Checks and resolves `tool_resources` against the tenant's files and vector stores."""

    def __init__(self, files, vector_stores) -> None:
        self._files, self._vector_stores = files, vector_stores

    async def check(self, tenant_id: str, value: dict | None, param: str = "tool_resources") -> None:
        """Every limit and reference, without creating anything."""
        if value is None:
            return
        code = value.get("code_interpreter")
        if code is not None:
            file_ids = list(code.get("file_ids") or [])
            check_max_items(file_ids, MAX_CODE_FILES, f"{param}.code_interpreter.file_ids")
            for index, file_id in enumerate(file_ids):
                await check_file(self._files, tenant_id, file_id, f"{param}.code_interpreter.file_ids[{index}]")
        search = value.get("file_search")
        if search is not None:
            store_ids = list(search.get("vector_store_ids") or [])
            inline = list(search.get("vector_stores") or [])
            if store_ids and inline:
                raise invalid_request(
                    f"Invalid '{param}.file_search': only one of 'vector_store_ids' or 'vector_stores' can be provided.", param=f"{param}.file_search"
                )
            check_max_items(store_ids, MAX_VECTOR_STORES, f"{param}.file_search.vector_store_ids")
            check_max_items(inline, MAX_VECTOR_STORES, f"{param}.file_search.vector_stores")
            for index, store_id in enumerate(store_ids):
                await check_vector_store(self._vector_stores, tenant_id, store_id, f"{param}.file_search.vector_store_ids[{index}]")
            for index, store in enumerate(inline):
                where = f"{param}.file_search.vector_stores[{index}]"
                file_ids = list(store.get("file_ids") or [])
                check_max_items(file_ids, 500, f"{where}.file_ids")  # as for a vector store created directly
                for file_index, file_id in enumerate(file_ids):
                    await check_file(self._files, tenant_id, file_id, f"{where}.file_ids[{file_index}]")
                if store.get("chunking_strategy") is not None and not file_ids:
                    raise invalid_request("'chunking_strategy' is only applicable if 'file_ids' is non-empty.", param=f"{where}.chunking_strategy")

    async def resolve(self, tenant_id: str, value: dict | None, *, store_expiry: dict | None = None) -> dict | None:
        """The stored shape; inline vector stores are created now (call `check` first)."""
        if value is None:
            return None
        out: dict = {}
        if value.get("code_interpreter") is not None:
            out["code_interpreter"] = {"file_ids": list(value["code_interpreter"].get("file_ids") or [])}
        search = value.get("file_search")
        if search is not None:
            store_ids = list(search.get("vector_store_ids") or [])
            for store in search.get("vector_stores") or ():
                params = {key: store[key] for key in ("file_ids", "chunking_strategy", "metadata") if store.get(key) is not None}
                if store_expiry is not None:
                    params["expires_after"] = store_expiry
                store_ids.append((await self._vector_stores.create(tenant_id, params))["id"])
            out["file_search"] = {"vector_store_ids": store_ids}
        return out

    async def new_store(self, tenant_id: str) -> str:
        """A thread's own vector store, for files attached to its messages with file_search."""
        return (await self._vector_stores.create(tenant_id, {"expires_after": THREAD_STORE_EXPIRY}))["id"]

    async def add_file(self, tenant_id: str, store_id: str, file_id: str) -> None:
        await self._vector_stores.files.create(tenant_id, store_id, {"file_id": file_id})


def merge(current: dict | None, update: dict | None) -> dict:
    """An update's tool_resources replace the tools they name and keep the others."""
    return {**(current or {}), **(update or {})}
