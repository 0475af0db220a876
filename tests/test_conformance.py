"""One representative request per implemented operation, each raw response body validated against
the official OpenAI spec's schema for it. Requests go through the SDK's `with_raw_response`, so the
SDK builds them exactly as it would for OpenAI, and we see the bytes it got back."""
from __future__ import annotations

import httpx
import pytest

from tests.conftest import assert_openai_error
from tests.support.openapi import assert_matches_schema


def ok(raw, status: int = 200) -> dict:
    """The raw response's JSON, after checking its status (creates are 200 at OpenAI, never 201)."""
    response = raw.http_response
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.fixture
def file_id(client) -> str:
    return client.files.create(file=("seed.txt", b"seed"), purpose="assistants").id


@pytest.fixture
def upload_id(client) -> str:
    return client.uploads.create(bytes=5, filename="u.txt", mime_type="text/plain", purpose="assistants").id


# --- files ----------------------------------------------------------------------------------------


def test_create_file(client):
    raw = client.files.with_raw_response.create(file=("hello.jsonl", b'{"a": 1}\n'), purpose="batch")
    body = ok(raw)
    assert_matches_schema(body, "OpenAIFile")
    assert (body["object"], body["filename"], body["bytes"], body["purpose"]) == ("file", "hello.jsonl", 9, "batch")


def test_list_files(client, file_id):
    body = ok(client.files.with_raw_response.list())
    assert_matches_schema(body, "ListFilesResponse")
    assert [f["id"] for f in body["data"]] == [file_id]


def test_retrieve_file(client, file_id):
    body = ok(client.files.with_raw_response.retrieve(file_id))
    assert_matches_schema(body, "OpenAIFile")
    assert body["id"] == file_id


def test_delete_file(client, file_id):
    body = ok(client.files.with_raw_response.delete(file_id))
    assert_matches_schema(body, "DeleteFileResponse")
    assert body == {"id": file_id, "object": "file", "deleted": True}


# --- uploads --------------------------------------------------------------------------------------


def test_create_upload(client):
    raw = client.uploads.with_raw_response.create(bytes=5, filename="u.txt", mime_type="text/plain", purpose="assistants")
    body = ok(raw)
    assert_matches_schema(body, "Upload")
    assert (body["object"], body["status"], body["file"]) == ("upload", "pending", None)


def test_add_upload_part(client, upload_id):
    body = ok(client.uploads.parts.with_raw_response.create(upload_id, data=b"hello"))
    assert_matches_schema(body, "UploadPart")
    assert (body["object"], body["upload_id"]) == ("upload.part", upload_id)


def test_complete_upload(client, upload_id):
    part = client.uploads.parts.create(upload_id, data=b"hello")
    body = ok(client.uploads.with_raw_response.complete(upload_id, part_ids=[part.id]))
    assert_matches_schema(body, "Upload")
    assert body["status"] == "completed"
    assert_matches_schema(body["file"], "OpenAIFile")
    assert body["file"]["bytes"] == 5


def test_cancel_upload(client, upload_id):
    body = ok(client.uploads.with_raw_response.cancel(upload_id))
    assert_matches_schema(body, "Upload")
    assert body["status"] == "cancelled"


# --- models ---------------------------------------------------------------------------------------


def test_list_models(client):
    body = ok(client.models.with_raw_response.list())
    assert_matches_schema(body, "ListModelsResponse")
    assert body["data"]


def test_retrieve_model(client):
    body = ok(client.models.with_raw_response.retrieve("gpt-4o-mini"))
    assert_matches_schema(body, "Model")
    assert body["id"] == "gpt-4o-mini"


# --- errors ---------------------------------------------------------------------------------------


def error_cases(server, http) -> dict[str, tuple[httpx.Response, int]]:
    return {
        "400 invalid body": (http.post("/uploads", json={"bytes": "5"}), 400),
        "400 bad query": (http.get("/files", params={"limit": "x"}), 400),
        "401 no key": (httpx.get(f"{server.url}/v1/models"), 401),
        "403 delete catalogue model": (http.delete("/models/gpt-4o"), 403),
        "404 unknown file": (http.get("/files/file-nope"), 404),
        "404 unknown upload": (http.post("/uploads/upload_nope/cancel"), 404),
        "404 unknown model": (http.get("/models/nope"), 404),
        "404 unknown route": (http.get("/nope"), 404),
        "405 wrong method": (http.put("/files"), 405),
    }


def test_error_bodies_match_the_spec(server, http):
    for name, (response, status) in error_cases(server, http).items():
        assert response.status_code == status, (name, response.text)
        assert_matches_schema(response.json(), "ErrorResponse")
        assert_openai_error(response, status)
