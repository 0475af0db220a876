"""Checkpoint permissions (`/v1/fine_tuning/checkpoints/{checkpoint}/permissions`): which projects may use a
fine-tuned model checkpoint. Rows belong to the checkpoint's owner tenant.

The checkpoint is named by its model name: a checkpoint's `fine_tuned_model_checkpoint`
(`ft:…:ckpt-step-N`), or a succeeded job's fine-tuned model (`ft:…`). `owner=None` (an admin key in keys
mode, which speaks for the whole organisation) finds it in any tenant.
"""
from __future__ import annotations

import time

from sqlalchemy import delete, insert, select

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.pagination import Page, fetch_page, list_body
from app.services.fine_tuning.tuned_models import tuned
from storage.chatkit_tables import CheckpointPermission
from storage.models import FineTuningCheckpoint, Project

permissions = CheckpointPermission.__table__
checkpoints = FineTuningCheckpoint.__table__
projects = Project.__table__
MAX_PROJECTS = 100


def checkpoint_not_found(name: str) -> APIError:
    return APIError(f"Fine-tuned model checkpoint '{name}' not found.", status_code=404, param="fine_tuned_model_checkpoint",
                    code="model_not_found")


def permission_body(row) -> dict:
    return {"object": "checkpoint.permission", "id": row.id, "created_at": row.created_at, "project_id": row.project_id}


class CheckpointPermissionsService:
    def __init__(self, db, *, check_projects: bool) -> None:
        self._db = db
        self._check_projects = check_projects  # keys mode: a project id must name an existing project

    async def owner(self, name: str, tenant_id: str | None) -> str:
        """The tenant owning the checkpoint `name` (the caller's own tenant, or any with tenant_id None)."""
        query = select(tuned.c.tenant_id).where(tuned.c.id == name)
        if tenant_id is not None:
            query = query.where(tuned.c.tenant_id == tenant_id)
        row = await self._db.fetch_one(query.limit(1))
        if row is not None:
            return row.tenant_id
        parts = name.split(":")
        if len(parts) >= 6 and name.startswith("ft:") and parts[-1].startswith("ckpt-step-") and parts[-2]:
            query = select(checkpoints.c.tenant_id, checkpoints.c.data).where(checkpoints.c.job_id.endswith(parts[-2], autoescape=True))
            if tenant_id is not None:
                query = query.where(checkpoints.c.tenant_id == tenant_id)
            for row in await self._db.fetch_all(query.limit(1000)):
                if row.data.get("fine_tuned_model_checkpoint") == name:
                    return row.tenant_id
        raise checkpoint_not_found(name)

    async def create(self, owner: str, name: str, body: dict) -> dict:
        project_ids = body.get("project_ids")
        if "project_ids" not in body:
            raise invalid_request("Missing required parameter: 'project_ids'.", param="project_ids", code="missing_required_parameter")
        unknown = next((k for k in body if k != "project_ids"), None)
        if unknown is not None:
            raise invalid_request(f"Unknown parameter: '{unknown}'.", param=unknown, code="unknown_parameter")
        if not isinstance(project_ids, list):
            raise invalid_request("Invalid type for 'project_ids': expected an array of strings.", param="project_ids", code="invalid_type")
        if not project_ids:
            raise invalid_request("Invalid 'project_ids': empty array. Expected an array with minimum length 1.", param="project_ids",
                                  code="empty_array")
        if len(project_ids) > MAX_PROJECTS:
            raise invalid_request(f"Invalid 'project_ids': array too long. Expected an array with maximum length {MAX_PROJECTS}.",
                                  param="project_ids", code="array_above_max_length")
        for i, pid in enumerate(project_ids):
            if not isinstance(pid, str) or not pid.strip() or len(pid) > 128:
                raise invalid_request(f"Invalid 'project_ids[{i}]': expected a project id.", param=f"project_ids[{i}]", code="invalid_value")
        if self._check_projects:
            found = {r.id for r in await self._db.fetch_all(select(projects.c.id).where(projects.c.id.in_(set(project_ids))))}
            missing = next((p for p in project_ids if p not in found), None)
            if missing is not None:
                raise APIError(f"Project '{missing}' not found.", status_code=404, param="project_ids")
        existing = {r.project_id: r for r in await self._db.fetch_all(
            select(permissions).where(permissions.c.tenant_id == owner, permissions.c.checkpoint == name))}
        out, now = [], int(time.time())
        async with self._db.begin() as conn:
            for pid in dict.fromkeys(project_ids):  # a project named twice, or already allowed, gets one permission
                if pid in existing:
                    out.append(permission_body(existing[pid]))
                    continue
                row = {"id": new_id("cp_"), "tenant_id": owner, "checkpoint": name, "project_id": pid, "created_at": now}
                await conn.execute(insert(permissions).values(**row))
                out.append({"object": "checkpoint.permission", "id": row["id"], "created_at": now, "project_id": pid})
        return list_body(out, False)

    async def list(self, owner: str, name: str, page: Page, project_id: str | None) -> dict:
        filters = {"tenant_id": owner, "checkpoint": name}
        if project_id:
            filters["project_id"] = project_id
        rows, has_more = await fetch_page(self._db, permissions, page, filters)
        return list_body([permission_body(r) for r in rows], has_more)

    async def delete(self, owner: str, name: str, permission_id: str) -> dict:
        async with self._db.begin() as conn:
            result = await conn.execute(delete(permissions).where(
                permissions.c.tenant_id == owner, permissions.c.checkpoint == name, permissions.c.id == permission_id))
        if result.rowcount == 0:
            raise APIError(f"Permission with id '{permission_id}' not found.", status_code=404, param="permission_id")
        return {"object": "checkpoint.permission", "id": permission_id, "deleted": True}
