"""The tenant's fine-tuned models (rows a succeeded job writes), as the model catalogue and the inference
path read them: the row's data holds the base model and a few (prompt, reply) training examples."""
from __future__ import annotations

from sqlalchemy import delete, select

from storage.chatkit_tables import CheckpointPermission
from storage.models import FineTunedModel

tuned = FineTunedModel.__table__
shared = CheckpointPermission.__table__


class FineTunedModels:
    """The tenant's fine-tuned models, as the model catalogue and the inference path read them."""

    def __init__(self, db) -> None:
        self._db = db

    async def get(self, tenant_id: str, model_id: str) -> dict | None:
        row = await self._db.fetch_one(select(tuned.c.data).where(tuned.c.tenant_id == tenant_id, tuned.c.id == model_id))
        if row is None:  # another project's model, shared with this one (keys mode: the tenant is the project)
            row = await self._db.fetch_one(select(tuned.c.data).join(shared, (shared.c.tenant_id == tuned.c.tenant_id) & (shared.c.checkpoint == tuned.c.id))
                                           .where(shared.c.project_id == tenant_id, tuned.c.id == model_id).limit(1))
        return row.data if row is not None else None

    async def list(self, tenant_id: str) -> list[dict]:
        """The tenant's own fine-tuned models, then those other projects shared with it."""
        rows = await self._db.fetch_all(select(tuned.c.data).where(tuned.c.tenant_id == tenant_id).order_by(tuned.c.seq))
        granted = await self._db.fetch_all(select(tuned.c.data).join(shared, (shared.c.tenant_id == tuned.c.tenant_id) & (shared.c.checkpoint == tuned.c.id))
                                           .where(shared.c.project_id == tenant_id, tuned.c.tenant_id != tenant_id).order_by(shared.c.seq))
        seen, out = set(), []
        for row in [*rows, *granted]:
            if row.data["id"] not in seen:
                seen.add(row.data["id"])
                out.append(row.data)
        return out

    async def delete(self, tenant_id: str, model_id: str) -> bool:
        async with self._db.begin() as conn:
            result = await conn.execute(delete(tuned).where(tuned.c.tenant_id == tenant_id, tuned.c.id == model_id))
        return result.rowcount > 0
