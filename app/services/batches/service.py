"""OpenAI's Batch API (/v1/batches): create from a JSONL file of `purpose: batch`, retrieve, list, cancel.

The lines run in the background, in the `execute_batch` job (execute.py), through the live endpoints'
own services; this side only creates batches and moves them where a client can (a cancel).
"""
from __future__ import annotations

from app.core.errors import invalid_request
from app.core.metadata import check_metadata
from app.core.pagination import Page, list_body
from app.services.batches import lifecycle
from app.services.batches.lines import ENDPOINTS
from app.services.batches.store import OPENAI_PREFIX, BatchStore
from app.services.files import check_expires_after


class BatchesService:
    def __init__(self, store: BatchStore, files, queue, *, window_seconds: int) -> None:
        self._store, self._files, self._queue = store, files, queue
        self._window = window_seconds

    async def create(self, tenant_id: str, params: dict) -> dict:
        endpoint = params.get("endpoint")
        if endpoint not in ENDPOINTS:
            supported = ", ".join(f"'{e}'" for e in ENDPOINTS)
            raise invalid_request(f"Invalid value: '{endpoint}'. Supported values are: {supported}.", param="endpoint", code="invalid_value")
        if params.get("completion_window") != "24h":
            raise invalid_request(
                f"Invalid value: '{params.get('completion_window')}'. Supported values are: '24h'.", param="completion_window", code="invalid_value"
            )
        metadata = check_metadata(params.get("metadata"))
        check_expires_after(params.get("output_expires_after"))
        output_expires_after = params.get("output_expires_after")
        file_id = params.get("input_file_id")
        if not isinstance(file_id, str):
            raise invalid_request("Missing required parameter: 'input_file_id'.", param="input_file_id", code="missing_required_parameter")
        row = await self._files.get_row(tenant_id, file_id)
        if row.purpose != "batch":
            raise invalid_request(
                f"File {file_id} has purpose '{row.purpose}'; a batch's input file must have purpose 'batch'.", param="input_file_id",
                code="invalid_value",
            )
        batch = lifecycle.new_batch(OPENAI_PREFIX, endpoint, metadata, self._window)
        batch.update(input_file_id=file_id, output_expires_after=output_expires_after)
        await lifecycle.start(self._store, self._queue, tenant_id, batch)
        return _wire(batch)

    async def get(self, tenant_id: str, batch_id: str) -> dict:
        return _wire(await lifecycle.own(self._store, tenant_id, batch_id, OPENAI_PREFIX))

    async def list(self, tenant_id: str, page: Page) -> dict:
        found, has_more = await self._store.page(tenant_id, page, OPENAI_PREFIX)
        return list_body([_wire(batch) for batch in found], has_more)

    async def cancel(self, tenant_id: str, batch_id: str) -> dict:
        return _wire(await lifecycle.cancel(self._store, tenant_id, batch_id, OPENAI_PREFIX))


# Optional and non-nullable in OpenAI's schema: absent rather than null (the SDK reads either as None).
_ABSENT_WHEN_NULL = ("usage", "model", "errors", "failed_at", "expired_at", "cancelling_at", "cancelled_at")
_INTERNAL = ("output_expires_after", "input_blob")


def _wire(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if (v is not None or k not in _ABSENT_WHEN_NULL) and k not in _INTERNAL}
