"""The models a tenant can name: the catalogue file (app/services/model_catalogue.json), ids added by
configuration, the tenant's fine-tuned models, and, unless strict, any plain id that looks like a known
family (answered by the offline model until an upstream provider claims it).

Entries carry more than the wire shows (kind, context window, modalities); `openai_model` and
`anthropic_model` give each API its shape.
"""
from __future__ import annotations

from datetime import datetime, timezone

from app.core.errors import APIError
from app.services.model_catalogue import Catalogue, load

# A stable, plausible `created` for ids added by configuration (deterministic responses).
_EXTRA_CREATED = 1_704_067_200


def openai_model(model: dict) -> dict:
    return {"id": model["id"], "object": "model", "created": model["created"], "owned_by": model["owned_by"]}


def openai_list(models: list[dict]) -> dict:
    return {"object": "list", "data": [openai_model(m) for m in models]}


def anthropic_model(model: dict) -> dict:
    """The Anthropic SDK's shape of a model (its `client.models` calls the same /v1/models path)."""
    created = datetime.fromtimestamp(model["created"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": model["id"], "display_name": model.get("display_name") or model["id"], "created_at": created}


def anthropic_list(models: list[dict]) -> dict:
    data = [anthropic_model(m) for m in models]
    return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def not_found(model_id: str) -> APIError:
    return APIError(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        status_code=404, param="model", code="model_not_found",
    )


class ModelsService:
    def __init__(self, extra_models: tuple[str, ...] = (), *, strict: bool = False, catalogue: Catalogue | None = None) -> None:
        self._catalogue = catalogue or load()
        # strict (UNDERSTUDY_STRICT_MODELS): OpenAI's 404 for every id outside the file, no family guesses.
        self._strict = strict
        # Ids added by configuration (UNDERSTUDY_EXTRA_MODELS), e.g. a model newer than the file: a family's
        # kind when one matches (so an extra `*-transcribe` id transcribes), else chat.
        self._extra: dict[str, dict] = {}
        for model_id in extra_models:
            if model_id not in self._catalogue.models:
                base = self._catalogue.synthesize(model_id) or {"kind": "chat", "context_window": None, "max_output_tokens": None,
                                                                "input_modalities": ["text"], "output_modalities": ["text"]}
                self._extra[model_id] = {**base, "id": model_id, "created": _EXTRA_CREATED, "owned_by": "understudy"}
        self._listed = [*self._catalogue.models.values(), *self._extra.values()]
        self._fine_tuned = None  # the tenant's fine-tuned models (attached by the fine-tuning service)

    def attach_fine_tuned(self, store) -> None:
        self._fine_tuned = store

    def find(self, model_id: str) -> dict | None:
        """A catalogue or configured entry, else (outside strict mode) one synthesized from its family."""
        found = self._catalogue.models.get(model_id) or self._extra.get(model_id)
        if found is None and not self._strict:
            found = self._catalogue.synthesize(model_id)
        return found

    def get(self, tenant_id: str, model_id: str) -> dict:
        model = self.find(model_id)
        if model is None:
            raise not_found(model_id)
        return model

    def supports(self, tenant_id: str, model_id: str, kind: str) -> bool:
        model = self.find(model_id)
        return model is not None and model["kind"] == kind

    def of_kind(self, kind: str) -> tuple[str, ...]:
        """The listed ids of one kind (what an error names as the supported values)."""
        return tuple(m["id"] for m in self._listed if m["kind"] == kind)

    def fine_tunable(self, model_id: str) -> bool:
        if model_id in self._extra:
            return True
        model = self.find(model_id)
        return model is not None and model["kind"] == "chat" and model["owned_by"] == "openai"

    async def fine_tuned(self, tenant_id: str, model_id: str) -> dict | None:
        """The row data of a tenant's fine-tuned model (base_model, examples), or None."""
        if self._fine_tuned is None or not model_id.startswith("ft:"):
            return None
        return await self._fine_tuned.get(tenant_id, model_id)

    async def list_all(self, tenant_id: str) -> list[dict]:
        """The listed entries, then the tenant's fine-tuned models. Family-matched ids are not listed:
        they are answered, not advertised."""
        own = await self._fine_tuned.list(tenant_id) if self._fine_tuned is not None else []
        return [*self._listed, *own] if own else self._listed

    async def lookup(self, tenant_id: str, model_id: str) -> dict:
        found = await self.fine_tuned(tenant_id, model_id)
        return found if found is not None else self.get(tenant_id, model_id)

    async def remove(self, tenant_id: str, model_id: str) -> dict:
        """Only a tenant's fine-tuned models can be deleted (they arrive with fine-tuning jobs)."""
        if self._fine_tuned is not None and model_id.startswith("ft:") and await self._fine_tuned.delete(tenant_id, model_id):
            return {"id": model_id, "object": "model", "deleted": True}
        self.get(tenant_id, model_id)
        raise APIError(
            f"You do not have permission to delete the model '{model_id}': only fine-tuned models you own can be deleted.",
            status_code=403, type="invalid_request_error", param="model", code="model_not_deletable",
        )
