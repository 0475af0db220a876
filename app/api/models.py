"""/v1/models: the catalogue."""
from __future__ import annotations

from litestar import Controller, Request, delete, get

from app.api.deps import caller


class ModelsController(Controller):
    path = "/models"

    @get("/")
    async def list_models(self, request: Request) -> dict:
        platform, tenant = caller(request)
        return platform.models.list(tenant)

    # `path`: upstream model ids may contain slashes ("meta-llama/Llama-3.1-8B").
    @get("/{model:path}")
    async def retrieve(self, request: Request, model: str) -> dict:
        platform, tenant = caller(request)
        return platform.models.get(tenant, model.lstrip("/"))

    @delete("/{model:path}", status_code=200)
    async def delete_model(self, request: Request, model: str) -> dict:
        platform, tenant = caller(request)
        return platform.models.delete(tenant, model.lstrip("/"))
