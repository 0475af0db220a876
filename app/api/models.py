"""/v1/models: the catalogue, and the tenant's fine-tuned models."""
from __future__ import annotations

from litestar import Controller, Request, delete, get

from app.api.deps import caller
from app.services.models import anthropic_list, anthropic_model, openai_list, openai_model


class ModelsController(Controller):
    path = "/models"

    @get("/")
    async def list_models(self, request: Request) -> dict:
        platform, tenant = caller(request)
        models = await platform.models.list_all(tenant)
        if "anthropic-version" in request.headers:  # the Anthropic SDK lists models on the same path
            return anthropic_list(models)
        return openai_list(models)

    # `path`: upstream model ids may contain slashes ("meta-llama/Llama-3.1-8B").
    @get("/{model:path}")
    async def retrieve(self, request: Request, model: str) -> dict:
        platform, tenant = caller(request)
        found = await platform.models.lookup(tenant, model.lstrip("/"))
        return anthropic_model(found) if "anthropic-version" in request.headers else openai_model(found)

    @delete("/{model:path}", status_code=200)
    async def delete_model(self, request: Request, model: str) -> dict:
        platform, tenant = caller(request)
        return await platform.models.remove(tenant, model.lstrip("/"))
