"""/v1/models: the catalogue of OpenAI, Anthropic and Gemini model ids, read-only."""
from __future__ import annotations

import openai
import pytest

from tests.conftest import assert_openai_error
from tests.support.openapi import assert_matches_schema

EXPECTED = {
    "gpt-4o": "openai", "gpt-4o-mini": "openai", "text-embedding-3-small": "openai", "whisper-1": "openai",
    "dall-e-3": "openai", "claude-sonnet-4-5": "anthropic", "gemini-2.5-flash": "google",
}


def test_list_matches_the_spec(http):
    response = http.get("/models")
    assert response.status_code == 200
    assert_matches_schema(response.json(), "ListModelsResponse")


def test_list_holds_openai_anthropic_and_gemini_models(client):
    models = {m.id: m for m in client.models.list()}
    for model_id, owner in EXPECTED.items():
        assert model_id in models, model_id
        assert models[model_id].owned_by == owner


def test_every_listed_model_is_well_formed(http):
    for model in http.get("/models").json()["data"]:
        assert model["object"] == "model", model
        assert type(model["created"]) is int and model["created"] > 0, model
        assert isinstance(model["owned_by"], str) and model["owned_by"], model


def test_listed_ids_are_unique(http):
    ids = [m["id"] for m in http.get("/models").json()["data"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("model_id", sorted(EXPECTED))
def test_retrieve_each_provider_model(client, model_id):
    model = client.models.retrieve(model_id)
    assert (model.id, model.object, model.owned_by) == (model_id, "model", EXPECTED[model_id])


def test_retrieve_matches_the_spec_and_the_list_entry(http):
    response = http.get("/models/gpt-4o")
    assert response.status_code == 200
    assert_matches_schema(response.json(), "Model")
    listed = next(m for m in http.get("/models").json()["data"] if m["id"] == "gpt-4o")
    assert response.json() == listed


def test_unknown_model_is_model_not_found(http):
    response = http.get("/models/gpt-nope")
    error = assert_openai_error(response, 404, param="model", code="model_not_found")
    assert "gpt-nope" in error["message"]
    assert_matches_schema(response.json(), "ErrorResponse")


def test_sdk_raises_not_found_for_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-nope")
    assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert caught.value.request_id.startswith("req_")


@pytest.mark.parametrize("model_id", ["meta-llama/Llama-3.1-8B-Instruct", "ft:gpt-4o-mini:acme:custom:abc123", "org/sub/model:v1"])
def test_ids_with_slashes_and_colons_reach_the_models_route(http, client, model_id):
    """Upstream ids contain "/" and ":"; whether sent raw or %2F-encoded (as the SDK does), they are
    looked up as models, not answered with "Invalid URL"."""
    error = assert_openai_error(http.get(f"/models/{model_id}"), 404, param="model", code="model_not_found")
    assert f"'{model_id}'" in error["message"]
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(model_id)
    assert caught.value.code == "model_not_found"


def test_deleting_a_catalogue_model_is_forbidden(http, client):
    """Only a tenant's own fine-tuned models may be deleted; the catalogue stays whole."""
    response = http.delete("/models/gpt-4o")
    assert_openai_error(response, 403, param="model")
    assert_matches_schema(response.json(), "ErrorResponse")
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("gpt-4o-mini")
    listed = {m.id for m in client.models.list()}
    assert {"gpt-4o", "gpt-4o-mini"} <= listed


def test_deleting_an_unknown_model_is_404(http):
    assert_openai_error(http.delete("/models/gpt-nope"), 404, param="model", code="model_not_found")


def test_models_are_read_only(http):
    response = http.post("/models", json={"id": "mine"})
    assert response.status_code in (404, 405)
    assert_openai_error(response, response.status_code)
