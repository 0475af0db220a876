"""The model catalogue: every model id the official SDKs know, all served by the offline model until
an upstream provider claims them. Built from the SDKs' own type literals, so upgrading the SDKs
refreshes the catalogue."""
from __future__ import annotations

import typing
from datetime import datetime, timezone
from functools import cache

import openai.types
import openai.types.audio
from openai.types import completion_create_params

from app.core.errors import APIError

# Gemini has no SDK among our dependencies: the current public model ids.
GEMINI_MODELS = (
    "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash", "gemini-2.0-flash-lite",
    "gemini-embedding-001", "text-embedding-004",
)
# A stable, plausible `created` for catalogue entries (deterministic responses).
_CREATED = {"openai": 1_704_067_200, "anthropic": 1_704_067_200, "google": 1_704_067_200}


def _literals(annotation) -> list[str]:
    """Every string in a Literal, also when nested in a Union (`str | Literal[...]`)."""
    out: list[str] = []
    for arg in typing.get_args(annotation):
        if isinstance(arg, str):
            out.append(arg)
        else:
            out.extend(_literals(arg))
    return out


def _openai_ids() -> list[str]:
    legacy = typing.get_type_hints(completion_create_params.CompletionCreateParamsBase)["model"]
    sources = (
        openai.types.ChatModel, openai.types.ResponsesModel, legacy, openai.types.EmbeddingModel,
        openai.types.ModerationModel, openai.types.ImageModel, openai.types.AudioModel,
        openai.types.audio.SpeechModel, openai.types.VideoModel,
    )
    return [model_id for source in sources for model_id in _literals(source)]


@cache
def catalogue() -> dict[str, dict]:
    """Built on first use: importing the anthropic SDK takes over a second (the lifespan warms this
    in a thread so start-up does not wait for it)."""
    import anthropic.types

    owners = [("openai", _openai_ids()), ("anthropic", _literals(anthropic.types.Model)), ("google", list(GEMINI_MODELS))]
    models: dict[str, dict] = {}
    for owner, ids in owners:
        for model_id in ids:
            models.setdefault(model_id, {"id": model_id, "object": "model", "created": _CREATED[owner], "owned_by": owner})
    return models


@cache
def chat_models() -> frozenset[str]:
    """OpenAI's chat model ids (the ones a fine-tuning job may start from)."""
    return frozenset(_literals(openai.types.ChatModel))


def anthropic_model(model: dict) -> dict:
    """The Anthropic SDK's shape of a model (its `client.models` calls the same /v1/models path)."""
    created = datetime.fromtimestamp(model["created"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": model["id"], "display_name": model["id"], "created_at": created}


def anthropic_list(models: list[dict]) -> dict:
    data = [anthropic_model(m) for m in models]
    return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _wire(model: dict) -> dict:
    return {k: model[k] for k in ("id", "object", "created", "owned_by")}


class ModelsService:
    def __init__(self, extra_models: tuple[str, ...] = ()) -> None:
        # Ids added by configuration (UNDERSTUDY_EXTRA_MODELS), e.g. a model newer than the SDKs.
        self._extra = {m: {"id": m, "object": "model", "created": _CREATED["openai"], "owned_by": "understudy"} for m in extra_models}
        self._fine_tuned = None  # the tenant's fine-tuned models (attached by the fine-tuning service)

    def attach_fine_tuned(self, store) -> None:
        self._fine_tuned = store

    def fine_tunable(self, model_id: str) -> bool:
        return model_id in chat_models() or model_id in self._extra

    async def fine_tuned(self, tenant_id: str, model_id: str) -> dict | None:
        """The row data of a tenant's fine-tuned model (base_model, examples), or None."""
        if self._fine_tuned is None or not model_id.startswith("ft:"):
            return None
        return await self._fine_tuned.get(tenant_id, model_id)

    async def list_all(self, tenant_id: str) -> dict:
        listed = self.list(tenant_id)
        if self._fine_tuned is not None:
            own = [_wire(m) for m in await self._fine_tuned.list(tenant_id)]
            if own:
                listed = {"object": "list", "data": listed["data"] + own}
        return listed

    async def lookup(self, tenant_id: str, model_id: str) -> dict:
        found = await self.fine_tuned(tenant_id, model_id)
        return _wire(found) if found is not None else self.get(tenant_id, model_id)

    async def remove(self, tenant_id: str, model_id: str) -> dict:
        if self._fine_tuned is not None and model_id.startswith("ft:") and await self._fine_tuned.delete(tenant_id, model_id):
            return {"id": model_id, "object": "model", "deleted": True}
        return self.delete(tenant_id, model_id)

    def _all(self) -> dict[str, dict]:
        return {**catalogue(), **self._extra} if self._extra else catalogue()

    def list(self, tenant_id: str) -> dict:
        return {"object": "list", "data": list(self._all().values())}

    def get(self, tenant_id: str, model_id: str) -> dict:
        model = catalogue().get(model_id) or self._extra.get(model_id)
        if model is None:
            raise APIError(
                f"The model '{model_id}' does not exist or you do not have access to it.",
                status_code=404, param="model", code="model_not_found",
            )
        return model

    def delete(self, tenant_id: str, model_id: str) -> dict:
        """Only a tenant's fine-tuned models can be deleted (they arrive with fine-tuning jobs)."""
        self.get(tenant_id, model_id)
        raise APIError(
            f"You do not have permission to delete the model '{model_id}': only fine-tuned models you own can be deleted.",
            status_code=403, type="invalid_request_error", param="model", code="model_not_deletable",
        )


