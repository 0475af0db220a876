"""/v1/models: the catalogue file's OpenAI, Anthropic and Gemini ids, read-only; ids that look like a known
family answered too (a second server in strict mode answers OpenAI's 404 for them)."""
from __future__ import annotations

import io
import json
import wave

import anthropic
import httpx
import openai
import pytest

from app.services.model_catalogue import CATALOGUE_FILE
from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema

EXPECTED = {
    "gpt-4o": "openai", "gpt-4o-mini": "openai", "text-embedding-3-small": "openai", "whisper-1": "openai",
    "dall-e-3": "openai", "claude-sonnet-4-5": "anthropic", "gemini-2.5-flash": "google",
}
# Still sent by clients, though the installed SDKs may have dropped them: the file keeps them.
OLDER = ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-3-5-sonnet-20241022", "claude-3-5-haiku-latest",
         "claude-3-7-sonnet-20250219", "claude-3-opus-20240229", "claude-3-haiku-20240307", "claude-opus-4-20250514",
         "gpt-4-turbo", "gpt-3.5-turbo-0613", "gpt-4o-2024-08-06", "o1-mini", "text-embedding-ada-002", "dall-e-2",
         "whisper-1", "tts-1", "davinci-002", "babbage-002", "gemini-1.5-pro"]
UNKNOWN = "nope-model-1"  # outside every family: 404 in every mode
HELLO = [{"role": "user", "content": "hi"}]


def _file_ids() -> list[str]:
    return [m["id"] for m in json.loads(CATALOGUE_FILE.read_text())["models"]]


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("strict-models"), {"UNDERSTUDY_STRICT_MODELS": "1"})
    yield srv
    srv.stop()


@pytest.fixture
def strict(strict_server) -> openai.OpenAI:
    with openai.OpenAI(base_url=f"{strict_server.url}/v1", api_key=new_key(), max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def claude(server) -> anthropic.Anthropic:
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as sdk:
        yield sdk


def test_list_matches_the_spec(http):
    response = http.get("/models")
    assert response.status_code == 200
    assert_matches_schema(response.json(), "ListModelsResponse")


def test_list_holds_openai_anthropic_and_gemini_models(client):
    models = {m.id: m for m in client.models.list()}
    for model_id, owner in EXPECTED.items():
        assert model_id in models, model_id
        assert models[model_id].owned_by == owner


def test_list_is_the_catalogue_file(http):
    """Exactly the file's entries, in its order, for a tenant without fine-tuned models."""
    assert [m["id"] for m in http.get("/models").json()["data"]] == _file_ids()


def test_every_listed_model_is_well_formed(http):
    for model in http.get("/models").json()["data"]:
        assert set(model) == {"id", "object", "created", "owned_by"}, model  # the file's extra fields stay internal
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


@pytest.mark.parametrize("model_id", OLDER)
def test_ids_older_sdks_named_stay_answerable(client, model_id):
    assert client.models.retrieve(model_id).id == model_id


def test_retrieve_matches_the_spec_and_the_list_entry(http):
    response = http.get("/models/gpt-4o")
    assert response.status_code == 200
    assert_matches_schema(response.json(), "Model")
    listed = next(m for m in http.get("/models").json()["data"] if m["id"] == "gpt-4o")
    assert response.json() == listed == {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "openai"}


def test_unknown_model_is_model_not_found(http):
    response = http.get(f"/models/{UNKNOWN}")
    error = assert_openai_error(response, 404, param="model", code="model_not_found")
    assert error["message"] == f"The model '{UNKNOWN}' does not exist or you do not have access to it."
    assert_matches_schema(response.json(), "ErrorResponse")


def test_sdk_raises_not_found_for_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(UNKNOWN)
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


@pytest.mark.parametrize("model_id", ["gpt-4o:free", "claude-opus-9-9/x", "GPT-9O", "claude opus"])
def test_only_plain_ids_are_answered_by_family(http, model_id):
    assert_openai_error(http.get(f"/models/{model_id}"), 404, param="model", code="model_not_found")


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
    assert_openai_error(http.delete(f"/models/{UNKNOWN}"), 404, param="model", code="model_not_found")
    assert_openai_error(http.delete("/models/gpt-nope"), 403, param="model")  # answered by family, not deletable


def test_models_are_read_only(http):
    response = http.post("/models", json={"id": "mine"})
    assert response.status_code in (404, 405)
    assert_openai_error(response, response.status_code)


# ---- family-matched ids (default mode) ----

@pytest.mark.parametrize(("model_id", "owner"), [("claude-sonnet-4-5", "anthropic"), ("claude-opus-9-9", "anthropic"),
                                                 ("gpt-nope", "openai"), ("gpt-9o", "openai"), ("o9-mini", "openai"),
                                                 ("text-embedding-9-large", "openai"), ("gemini-9-ultra", "google")])
def test_family_ids_are_retrievable(http, client, model_id, owner):
    model = client.models.retrieve(model_id)
    assert (model.id, model.object, model.owned_by) == (model_id, "model", owner)
    assert type(model.created) is int and model.created > 0
    assert_matches_schema(http.get(f"/models/{model_id}").json(), "Model")


def test_family_ids_are_not_listed(client):
    client.models.retrieve("claude-opus-9-9")
    listed = {m.id for m in client.models.list()}
    assert "claude-opus-9-9" not in listed and "gpt-9o" not in listed and "claude-sonnet-4-5" in listed


@pytest.mark.parametrize("model_id", ["claude-sonnet-4-5", "claude-opus-9-9"])
def test_anthropic_sdk_messages_on_listed_and_family_claude_ids(claude, model_id):
    message = claude.messages.create(model=model_id, max_tokens=50, messages=HELLO)
    assert message.model == model_id and message.content[0].text


def test_anthropic_sdk_retrieves_display_names(claude):
    assert claude.models.retrieve("claude-sonnet-4-5").display_name == "Claude Sonnet 4.5"
    assert claude.models.retrieve("claude-opus-9-9").display_name == "Claude Opus 9.9"
    listed = {m.id: m.display_name for m in claude.models.list(limit=1000)}
    assert listed["claude-3-5-haiku-latest"] == "Claude Haiku 3.5" and listed["gpt-4o"] == "gpt-4o"


def test_family_ids_chat_and_embed(client):
    completion = client.chat.completions.create(model="gpt-9o", messages=HELLO)
    assert completion.model == "gpt-9o" and completion.choices[0].message.content
    embedding = client.embeddings.create(model="text-embedding-9-large", input="hello")
    assert embedding.model == "text-embedding-9-large" and embedding.data[0].embedding


def _wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(range(256)) * int(seconds * rate * 2 / 256))
    return out.getvalue()


def test_family_ids_for_images_and_audio(client, http):
    """A new image, speech or transcription id is taken by its family's kind; a known model of another
    kind is still the 400 naming the supported ones."""
    image = client.images.generate(model="gpt-image-9", prompt="A lighthouse", size="1024x1024", quality="low")
    assert image.data[0].b64_json
    speech = client.audio.speech.create(model="tts-9", voice="alloy", input="Hello there")
    assert speech.content
    transcript = client.audio.transcriptions.create(model="gpt-9o-transcribe", file=("a.wav", _wav()))
    assert transcript.text
    error = assert_openai_error(http.post("/images/generations", json={"model": "gpt-9o", "prompt": "x"}), 400, param="model", code="invalid_value")
    assert "'gpt-image-1'" in error["message"]
    assert_openai_error(http.post("/audio/speech", json={"model": "gpt-9o-transcribe", "input": "x", "voice": "alloy"}), 400, param="model")


# ---- strict mode (UNDERSTUDY_STRICT_MODELS=1) ----

@pytest.mark.parametrize("model_id", ["claude-opus-9-9", "gpt-9o"])
def test_strict_mode_answers_openai_404_outside_the_file(strict_server, strict, model_id):
    with httpx.Client(base_url=f"{strict_server.url}/v1", headers={"Authorization": f"Bearer {new_key()}"}, timeout=30) as raw:
        error = assert_openai_error(raw.get(f"/models/{model_id}"), 404, param="model", code="model_not_found")
        assert error["message"] == f"The model '{model_id}' does not exist or you do not have access to it."
        chat = raw.post("/chat/completions", json={"model": model_id, "messages": HELLO})
        assert_openai_error(chat, 404, param="model", code="model_not_found")
    with pytest.raises(openai.NotFoundError) as caught:
        strict.models.retrieve(model_id)
    assert caught.value.code == "model_not_found"


def test_strict_mode_anthropic_sdk(strict_server):
    with anthropic.Anthropic(base_url=strict_server.url, api_key=new_key(), max_retries=0) as sdk:
        with pytest.raises(anthropic.NotFoundError):
            sdk.messages.create(model="claude-opus-9-9", max_tokens=10, messages=HELLO)
        message = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=HELLO)
        assert message.model == "claude-sonnet-4-5" and message.content[0].text


def test_strict_mode_still_serves_the_file(strict):
    model = strict.models.retrieve("claude-sonnet-4-5")
    assert (model.id, model.owned_by) == ("claude-sonnet-4-5", "anthropic")
    assert [m.id for m in strict.models.list()] == _file_ids()
    with pytest.raises(openai.NotFoundError):
        strict.images.generate(model="gpt-image-9", prompt="x")
    with pytest.raises(openai.NotFoundError):
        strict.embeddings.create(model="text-embedding-9-large", input="x")
