"""/v1/uploads end to end against the live server: parts, completion into a File, cancel, expiry, tenancy."""
from __future__ import annotations

import hashlib
import os
import time

import openai
import pytest

from tests.conftest import SERVER_MAX_FILE_BYTES, assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema

DAY = 24 * 3600
UPLOAD_TTL = 2  # seconds, on the expiry server only


def open_upload(client, size: int, filename: str = "data.bin", purpose: str = "assistants", **kwargs):
    return client.uploads.create(bytes=size, filename=filename, mime_type="application/octet-stream", purpose=purpose, **kwargs)


def add_parts(client, upload_id: str, chunks: list[bytes]) -> list[str]:
    return [client.uploads.parts.create(upload_id, data=chunk).id for chunk in chunks]


def file_ids(client) -> list[str]:
    return [f.id for f in client.files.list()]


def sdk_client(server, api_key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key or new_key(), max_retries=0)


def blob_paths(server) -> set[str]:
    return {str(p.relative_to(server.data_dir)) for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}


def valid_create_body(**overrides) -> dict:
    body = {"bytes": 10, "filename": "a.txt", "mime_type": "text/plain", "purpose": "assistants"}
    return {k: v for k, v in {**body, **overrides}.items() if v is not None}


@pytest.fixture
def chunks() -> list[bytes]:
    return [os.urandom(1000), os.urandom(1000), os.urandom(500)]


@pytest.fixture
def pending(client, chunks):
    """A pending upload with its three parts added; (upload, part ids in upload order)."""
    upload = open_upload(client, sum(map(len, chunks)))
    return upload, add_parts(client, upload.id, chunks)


# --- the SDK's chunked helper ---------------------------------------------------------------------


def test_upload_file_chunked_from_bytes(client):
    data = os.urandom(10_000)
    upload = client.uploads.upload_file_chunked(
        file=data, filename="train.jsonl", bytes=len(data), mime_type="application/jsonl", purpose="fine-tune", part_size=3000
    )
    assert upload.status == "completed"
    assert upload.file is not None
    assert (upload.file.bytes, upload.file.filename, upload.file.purpose) == (len(data), "train.jsonl", "fine-tune")
    assert upload.file.id.startswith("file-") and upload.file.status == "processed"
    assert client.files.content(upload.file.id).content == data
    assert client.files.retrieve(upload.file.id).model_dump() == upload.file.model_dump()


def test_upload_file_chunked_from_a_path(client, tmp_path):
    data = os.urandom(25_000)
    path = tmp_path / "paper.pdf"
    path.write_bytes(data)
    upload = client.uploads.upload_file_chunked(file=path, mime_type="application/pdf", purpose="assistants", part_size=8192)
    assert upload.status == "completed"
    assert (upload.filename, upload.bytes, upload.file.filename, upload.file.bytes) == ("paper.pdf", len(data), "paper.pdf", len(data))
    assert client.files.content(upload.file.id).content == data


# --- the manual flow ------------------------------------------------------------------------------


def test_create_returns_a_pending_upload(client):
    body = client.uploads.with_raw_response.create(
        bytes=2500, filename="data.bin", mime_type="application/octet-stream", purpose="batch"
    ).http_response.json()
    assert_matches_schema(body, "Upload")
    assert body["id"].startswith("upload_")
    assert (body["object"], body["status"], body["bytes"], body["filename"], body["purpose"]) == ("upload", "pending", 2500, "data.bin", "batch")
    assert body["file"] is None
    assert abs(body["created_at"] - time.time()) < 10
    assert body["expires_at"] == body["created_at"] + 3600  # OpenAI's uploads live for an hour


def test_part_objects(client):
    upload = open_upload(client, 6)
    body = client.uploads.parts.with_raw_response.create(upload.id, data=b"abc").http_response.json()
    assert_matches_schema(body, "UploadPart")
    assert body["id"].startswith("part_")
    assert (body["object"], body["upload_id"]) == ("upload.part", upload.id)
    assert abs(body["created_at"] - time.time()) < 10


def test_complete_assembles_parts_in_the_order_given(client, chunks, pending):
    upload, part_ids = pending
    order = [2, 0, 1]
    raw = client.uploads.with_raw_response.complete(upload.id, part_ids=[part_ids[i] for i in order])
    body = raw.http_response.json()
    assert_matches_schema(body, "Upload")
    assert body["status"] == "completed"
    expected = b"".join(chunks[i] for i in order)
    assert body["file"]["bytes"] == len(expected)
    assert client.files.content(body["file"]["id"]).content == expected
    assert file_ids(client) == [body["file"]["id"]]


def test_complete_with_the_right_md5(client, chunks, pending):
    upload, part_ids = pending
    md5 = hashlib.md5(b"".join(chunks)).hexdigest()
    assert client.uploads.complete(upload.id, part_ids=part_ids, md5=md5).status == "completed"


def test_wrong_md5_creates_nothing_and_leaves_the_upload_pending(server, client, chunks, pending):
    upload, part_ids = pending
    blobs_before = blob_paths(server)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=part_ids, md5="0" * 32)
    assert_openai_error(exc.value.response, 400, param="md5")
    assert file_ids(client) == []
    assert blob_paths(server) == blobs_before
    done = client.uploads.complete(upload.id, part_ids=part_ids, md5=hashlib.md5(b"".join(chunks)).hexdigest())
    assert done.status == "completed"
    assert client.files.content(done.file.id).content == b"".join(chunks)


def test_unknown_part_id(client, pending):
    upload, part_ids = pending
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=part_ids[:2] + ["part_doesnotexist"])
    assert_openai_error(exc.value.response, 400, param="part_ids")


def test_part_of_another_upload_is_unknown(client, chunks, pending):
    upload, part_ids = pending
    other = open_upload(client, 500)
    stray = add_parts(client, other.id, [chunks[2]])
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=part_ids[:2] + stray)
    assert_openai_error(exc.value.response, 400, param="part_ids")


@pytest.mark.parametrize("pick", [[0, 1], [0, 1, 2, 2], []], ids=["too-few-bytes", "repeated-part", "no-parts"])
def test_parts_not_adding_up_to_the_declared_bytes(client, pending, pick):
    upload, part_ids = pending
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=[part_ids[i] for i in pick])
    assert_openai_error(exc.value.response, 400, param="part_ids")
    assert file_ids(client) == []


def test_complete_twice(client, pending):
    upload, part_ids = pending
    client.uploads.complete(upload.id, part_ids=part_ids)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=part_ids)
    assert "completed" in assert_openai_error(exc.value.response, 400)["message"]
    assert len(file_ids(client)) == 1


def test_completed_file_keeps_the_uploads_expires_after(client):
    upload = open_upload(client, 3, expires_after={"anchor": "created_at", "seconds": 7200})
    file = client.uploads.complete(upload.id, part_ids=add_parts(client, upload.id, [b"abc"])).file
    assert file.expires_at == file.created_at + 7200


def test_completed_batch_file_expires_after_30_days(client):
    upload = open_upload(client, 3, filename="in.jsonl", purpose="batch")
    file = client.uploads.complete(upload.id, part_ids=add_parts(client, upload.id, [b"{}\n"])).file
    assert file.expires_at == file.created_at + 30 * DAY


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel(client, chunks, pending):
    upload, part_ids = pending
    body = client.uploads.with_raw_response.cancel(upload.id).http_response.json()
    assert_matches_schema(body, "Upload")
    assert (body["id"], body["status"], body["file"]) == (upload.id, "cancelled", None)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(upload.id, data=b"more")
    assert "cancelled" in assert_openai_error(exc.value.response, 400)["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=part_ids)
    assert "cancelled" in assert_openai_error(exc.value.response, 400)["message"]
    assert file_ids(client) == []


def test_cancel_twice(client, pending):
    upload, _ = pending
    client.uploads.cancel(upload.id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.cancel(upload.id)
    assert_openai_error(exc.value.response, 400)


def test_cancel_after_complete(client, pending):
    upload, part_ids = pending
    file_id = client.uploads.complete(upload.id, part_ids=part_ids).file.id
    with pytest.raises(openai.BadRequestError):
        client.uploads.cancel(upload.id)
    assert file_ids(client) == [file_id]


# --- tenancy and unknown ids ----------------------------------------------------------------------


def test_another_tenants_upload_is_404(server, client, pending):
    upload, part_ids = pending
    with sdk_client(server) as intruder:
        with pytest.raises(openai.NotFoundError):
            intruder.uploads.parts.create(upload.id, data=b"x")
        with pytest.raises(openai.NotFoundError):
            intruder.uploads.complete(upload.id, part_ids=part_ids)
        with pytest.raises(openai.NotFoundError) as exc:
            intruder.uploads.cancel(upload.id)
        assert_openai_error(exc.value.response, 404)
    assert client.uploads.complete(upload.id, part_ids=part_ids).status == "completed"


def test_unknown_upload_is_404(http):
    error = assert_openai_error(http.post("/uploads/upload_doesnotexist/cancel"), 404)
    assert error["message"] == "No such Upload object: upload_doesnotexist"


# --- malformed requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (valid_create_body(bytes=0), "bytes", ...),
        (valid_create_body(bytes=-5), "bytes", ...),
        (valid_create_body(purpose="nonsense"), "purpose", ...),
        (valid_create_body(purpose="batch_output"), "purpose", ...),
        (valid_create_body(mime_type="not a mime type"), "mime_type", ...),
        (valid_create_body(expires_after={"anchor": "created_at", "seconds": 10}), "expires_after.seconds", ...),
        (valid_create_body(bytes=None), "bytes", "missing_required_parameter"),
        (valid_create_body(filename=None), "filename", "missing_required_parameter"),
        (valid_create_body(mime_type=None), "mime_type", "missing_required_parameter"),
        (valid_create_body(purpose=None), "purpose", "missing_required_parameter"),
        (valid_create_body(colour="blue"), "colour", "unknown_parameter"),
        (valid_create_body(bytes="10"), "bytes", "invalid_type"),
        (valid_create_body(bytes=10.5), "bytes", "invalid_type"),
    ],
)
def test_invalid_create(http, body, param, code):
    assert_openai_error(http.post("/uploads", json=body), 400, param=param, code=code)


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]"], ids=["malformed", "empty", "array"])
def test_create_body_not_a_json_object(http, content):
    assert_openai_error(http.post("/uploads", content=content, headers={"Content-Type": "application/json"}), 400)


def test_invalid_complete_bodies(client, http, pending):
    upload, part_ids = pending
    url = f"/uploads/{upload.id}/complete"
    assert_openai_error(http.post(url, json={}), 400, param="part_ids", code="missing_required_parameter")
    assert_openai_error(http.post(url, json={"part_ids": part_ids[0]}), 400, param="part_ids", code="invalid_type")
    assert_openai_error(http.post(url, content=b"{"), 400)
    assert client.uploads.complete(upload.id, part_ids=part_ids).status == "completed"


def test_part_request_without_data(http, pending):
    upload, _ = pending
    response = http.post(f"/uploads/{upload.id}/parts", files={"file": ("a", b"x")})
    assert_openai_error(response, 400, param="file", code="unknown_parameter")
    assert_openai_error(http.post(f"/uploads/{upload.id}/parts", json={"data": "x"}), 400)


def test_part_over_the_part_limit_is_413(server, client):
    upload = open_upload(client, 2 * SERVER_MAX_FILE_BYTES)
    before = blob_paths(server)
    with pytest.raises(openai.APIStatusError) as exc:
        client.uploads.parts.create(upload.id, data=os.urandom(SERVER_MAX_FILE_BYTES + 1))
    assert_openai_error(exc.value.response, 413)
    assert blob_paths(server) == before
    # the upload is still usable after the refused part
    part_ids = add_parts(client, upload.id, [bytes(SERVER_MAX_FILE_BYTES)] * 2)
    assert client.uploads.complete(upload.id, part_ids=part_ids).file.bytes == 2 * SERVER_MAX_FILE_BYTES


# --- expiry (a second server whose uploads live 2 s) ----------------------------------------------


@pytest.fixture(scope="module")
def expiry_server(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("expiry"),
        {"UNDERSTUDY_UPLOAD_TTL_SECONDS": str(UPLOAD_TTL), "UNDERSTUDY_SWEEP_INTERVAL_SECONDS": "0.5"},
    )
    yield srv
    assert srv.stop() == 0, srv.log()


@pytest.fixture(scope="module")
def expired(expiry_server):
    """An upload that took a part while pending, then outlived its TTL and was swept: (client, upload, part id)."""
    client = sdk_client(expiry_server)
    upload = open_upload(client, 6)
    assert upload.expires_at == upload.created_at + UPLOAD_TTL
    part_id = client.uploads.parts.create(upload.id, data=b"abc").id
    parts_dir = next((expiry_server.data_dir / "blobs").glob(f"*/uploads/{upload.id}"))
    assert any(parts_dir.iterdir())
    time.sleep(max(0.0, upload.expires_at - time.time()) + 0.1)
    deadline = time.monotonic() + 5
    while parts_dir.exists() and any(parts_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    yield client, upload, part_id
    client.close()


def test_sweep_drops_the_parts_of_an_expired_upload(expired, expiry_server):
    _, upload, _ = expired
    assert not any(p.is_file() for p in (expiry_server.data_dir / "blobs").glob(f"*/uploads/{upload.id}/*"))


def test_expired_upload_refuses_parts(expired):
    client, upload, _ = expired
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.parts.create(upload.id, data=b"def")
    assert "expired" in assert_openai_error(exc.value.response, 400)["message"]


def test_expired_upload_cannot_complete(expired):
    client, upload, part_id = expired
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.complete(upload.id, part_ids=[part_id])
    assert "expired" in assert_openai_error(exc.value.response, 400)["message"]
    assert file_ids(client) == []


def test_expired_upload_cannot_cancel(expired):
    client, upload, _ = expired
    with pytest.raises(openai.BadRequestError) as exc:
        client.uploads.cancel(upload.id)
    assert "expired" in assert_openai_error(exc.value.response, 400)["message"]


def test_fresh_upload_on_the_expiry_server_still_completes(expiry_server):
    """The short TTL is what expired the upload above, not something broken on that server."""
    with sdk_client(expiry_server) as client:
        upload = open_upload(client, 3)
        done = client.uploads.complete(upload.id, part_ids=add_parts(client, upload.id, [b"xyz"]))
        assert client.files.content(done.file.id).content == b"xyz"


@pytest.mark.parametrize("given, stored", [("../../etc/passwd", "passwd"), ("a\\b/c\x00d.txt", "cd.txt"), ("x" * 300, "x" * 255)])
def test_upload_filename_is_a_label_not_a_path(client, given, stored):
    """Uploads clean the filename exactly as POST /v1/files does."""
    upload = client.uploads.upload_file_chunked(file=b"abc", filename=given, bytes=3, mime_type="text/plain", purpose="assistants")
    assert upload.filename == stored
    assert client.files.retrieve(upload.file.id).filename == stored
