"""/v1/models: the catalogue."""
from __future__ import annotations

from litestar import Controller, delete, get

from app.platform import Platform


class ModelsController(Controller):
    path = "/models"

    @get("/")
    async def list_models(self, platform: Platform, tenant: str) -> dict:
        return platform.models.list(tenant)

    # `path`: upstream model ids may contain slashes ("meta-llama/Llama-3.1-8B").
    @get("/{model:path}")
    async def retrieve(self, platform: Platform, tenant: str, model: str) -> dict:
        return platform.models.get(tenant, model.lstrip("/"))

    @delete("/{model:path}", status_code=200)
    async def delete_model(self, platform: Platform, tenant: str, model: str) -> dict:
        return platform.models.delete(tenant, model.lstrip("/"))
