"""/v1/files end to end against the live server: create, list (cursors), retrieve, delete, content, tenancy."""
from __future__ import annotations

import os
import re
import secrets
import time
from urllib.parse import quote

import openai
import pytest

from tests.conftest import SERVER_MAX_FILE_BYTES, assert_openai_error, new_key
from tests.support.openapi import assert_matches_schema

PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
DAY = 24 * 3600
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def make_file(client, data: bytes = b"hello\n", name: str = "notes.txt", purpose: str = "assistants", **kwargs):
    return client.files.create(file=(name, data), purpose=purpose, **kwargs)


def raw_create(client, file, purpose: str, **kwargs) -> dict:
    """The exact JSON body the server sent back for a create made by the SDK."""
    return client.files.with_raw_response.create(file=file, purpose=purpose, **kwargs).http_response.json()


def multipart(*fields: tuple[str, bytes, str | None]) -> tuple[bytes, dict]:
    """A multipart/form-data body built by hand, for shapes httpx will not send (no file part at all)."""
    boundary = secrets.token_hex(8)
    body = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def listed_ids(client, **params) -> list[str]:
    return [f.id for f in client.files.list(**params)]


def other_tenant(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0)


def blob_paths(server) -> set[str]:
    return {str(p.relative_to(server.data_dir)) for p in (server.data_dir / "blobs").rglob("*") if p.is_file()}


@pytest.fixture
def seven_files(client) -> list[str]:
    """Seven files, ids in creation order (several share a created_at second: order must not rely on it)."""
    return [make_file(client, f"file {i}".encode(), f"f{i}.txt").id for i in range(7)]


# --- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", PURPOSES)
def test_create_returns_file_object(client, purpose):
    data = b'{"prompt": "hi"}\n' * 3
    body = raw_create(client, ("train.jsonl", data), purpose)
    assert body["id"].startswith("file-")
    assert body["object"] == "file"
    assert body["bytes"] == len(data)
    assert body["filename"] == "train.jsonl"
    assert body["purpose"] == purpose
    assert body["status"] == "processed"
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 10
    if purpose != "evals":  # the spec's purpose enum predates "evals"
        assert_matches_schema(body, "OpenAIFile")
    assert client.files.retrieve(body["id"]).model_dump(exclude_none=True) == body


def test_file_without_expiry_has_no_expires_at(client):
    body = raw_create(client, ("a.txt", b"x"), "assistants")
    assert "expires_at" not in body


@pytest.mark.parametrize("name", ["résumé 2024.txt", "日本語.txt"])
def test_non_ascii_filename_round_trips(client, name):
    """httpx sends the filename as raw UTF-8 in the part header; it must come back unchanged."""
    file = make_file(client, name=name)
    assert file.filename == name
    assert client.files.retrieve(file.id).filename == name
    disposition = client.files.with_raw_response.content(file.id).headers["content-disposition"]
    assert disposition == f"attachment; filename*=UTF-8''{quote(name)}"


@pytest.mark.parametrize("purpose", ["nonsense", "batch_output", "assistants_output", ""])
def test_bad_purpose_is_rejected_and_nothing_stored(client, purpose):
    """Output purposes are the server's own: a client may not upload with them."""
    with pytest.raises(openai.BadRequestError) as exc:
        make_file(client, purpose=purpose)
    assert_openai_error(exc.value.response, 400, param="purpose")
    assert listed_ids(client) == []


def test_bad_purpose_after_the_file_part_drops_the_staged_bytes(server, client, http):
    """Here the bytes are already streamed to the blob store when the purpose turns out to be wrong."""
    before = blob_paths(server)
    content, headers = multipart(("file", b"abc", "a.txt"), ("purpose", b"nonsense", None))
    assert_openai_error(http.post("/files", content=content, headers=headers), 400, param="purpose")
    assert listed_ids(client) == []
    assert blob_paths(server) == before


def test_missing_file_part(http):
    content, headers = multipart(("purpose", b"assistants", None))
    assert_openai_error(http.post("/files", content=content, headers=headers), 400, param="file", code="missing_required_parameter")


def test_missing_purpose(client, http):
    response = http.post("/files", files={"file": ("a.txt", b"data")})
    assert_openai_error(response, 400, param="purpose", code="missing_required_parameter")
    assert listed_ids(client) == []


def test_file_field_without_filename_is_not_a_file(http):
    content, headers = multipart(("purpose", b"assistants", None), ("file", b"just text", None))
    assert_openai_error(http.post("/files", content=content, headers=headers), 400, param="file")


def test_unknown_form_field(client, http):
    response = http.post("/files", files={"file": ("a.txt", b"data")}, data={"purpose": "assistants", "colour": "blue"})
    assert_openai_error(response, 400, param="colour", code="unknown_parameter")
    assert listed_ids(client) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"json": {"purpose": "assistants", "file": "aGVsbG8="}},
        {"data": {"purpose": "assistants"}},  # url-encoded
        {"content": b"--x\r\nnot really", "headers": {"Content-Type": "multipart/form-data"}},  # no boundary
    ],
    ids=["json", "urlencoded", "no-boundary"],
)
def test_non_multipart_body(http, kwargs):
    assert_openai_error(http.post("/files", **kwargs), 400)


def test_truncated_multipart_body(http):
    content, headers = multipart(("purpose", b"assistants", None), ("file", b"abc", "a.txt"))
    assert_openai_error(http.post("/files", content=content[:-20], headers=headers), 400)


def test_expires_after_sets_expires_at(client):
    body = raw_create(client, ("a.txt", b"x"), "assistants", expires_after={"anchor": "created_at", "seconds": 3600})
    assert body["expires_at"] == body["created_at"] + 3600
    assert_matches_schema(body, "OpenAIFile")
    assert client.files.retrieve(body["id"]).expires_at == body["expires_at"]


@pytest.mark.parametrize("seconds", [10, 3599, 30 * DAY + 1, 3_000_000])
def test_expires_after_seconds_out_of_range(client, seconds):
    with pytest.raises(openai.BadRequestError) as exc:
        make_file(client, expires_after={"anchor": "created_at", "seconds": seconds})
    assert_openai_error(exc.value.response, 400, param="expires_after.seconds")
    assert listed_ids(client) == []


@pytest.mark.parametrize(
    ("anchor", "seconds", "param"), [("last_access", "3600", "expires_after.anchor"), ("created_at", "soon", "expires_after.seconds")]
)
def test_expires_after_bad_form_values(http, anchor, seconds, param):
    data = {"purpose": "assistants", "expires_after[anchor]": anchor, "expires_after[seconds]": seconds}
    assert_openai_error(http.post("/files", files={"file": ("a.txt", b"x")}, data=data), 400, param=param)


@pytest.mark.parametrize(("field", "missing"), [("expires_after[seconds]", "expires_after.anchor"), ("expires_after[anchor]", "expires_after.seconds")])
def test_expires_after_half_given(http, field, missing):
    data = {"purpose": "assistants", field: "3600" if "seconds" in field else "created_at"}
    response = http.post("/files", files={"file": ("a.txt", b"x")}, data=data)
    assert_openai_error(response, 400, param=missing, code="missing_required_parameter")


def test_batch_file_expires_after_30_days_by_default(client):
    file = make_file(client, b'{"custom_id": "1"}\n', "in.jsonl", purpose="batch")
    assert file.expires_at == file.created_at + 30 * DAY


def test_file_over_size_limit_is_413_and_not_stored(server, client):
    before = blob_paths(server)
    with pytest.raises(openai.APIStatusError) as exc:
        make_file(client, os.urandom(SERVER_MAX_FILE_BYTES + 1), "big.bin")
    assert_openai_error(exc.value.response, 413)
    assert listed_ids(client) == []
    assert blob_paths(server) == before  # the partial blob was dropped too


def test_file_of_exactly_the_size_limit_is_accepted(client):
    assert make_file(client, bytes(SERVER_MAX_FILE_BYTES), "max.bin").bytes == SERVER_MAX_FILE_BYTES


@pytest.mark.parametrize(("sent", "stored"), [("../../etc/passwd", "passwd"), ("a/b\\c.txt", "c.txt")])
def test_path_in_filename_is_reduced_to_its_last_component(server, client, sent, stored):
    file = make_file(client, b"root:x:0:0", sent)
    assert file.filename == stored
    assert client.files.retrieve(file.id).filename == stored
    allowed_outside_blobs = re.compile(r"understudy\.db(-wal|-shm|-journal|\.migrate-lock)?|server-\d+\.log|\d\d\.lock|provenance\.key")
    for path in server.data_dir.rglob("*"):
        if path.is_file() and (server.data_dir / "blobs") not in path.parents:
            assert allowed_outside_blobs.fullmatch(path.name), f"unexpected file {path}"
        assert path.name not in {"passwd", "c.txt"}, path
    assert not (server.data_dir.parent / "etc" / "passwd").exists()


# --- list -----------------------------------------------------------------------------------------


def test_list_filters_by_purpose(client):
    batch = make_file(client, b"{}\n", "b.jsonl", purpose="batch").id
    assistants = make_file(client, purpose="assistants").id
    assert listed_ids(client, purpose="batch") == [batch]
    assert listed_ids(client, purpose="assistants") == [assistants]
    assert listed_ids(client, purpose="vision") == []


def test_list_order(client, seven_files):
    assert listed_ids(client) == seven_files[::-1]  # newest first by default
    assert listed_ids(client, order="desc") == seven_files[::-1]
    assert listed_ids(client, order="asc") == seven_files


def test_list_body_matches_schema(client, http, seven_files):
    body = http.get("/files").json()
    assert_matches_schema(body, "ListFilesResponse")
    assert body["object"] == "list" and body["has_more"] is False
    assert (body["first_id"], body["last_id"]) == (seven_files[-1], seven_files[0])


def test_empty_list(http):
    assert http.get("/files").json() == {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}


def test_after_cursor_walks_every_file_once(http, seven_files):
    seen, after, pages = [], None, []
    while True:
        params = {"limit": 2, "order": "asc", **({"after": after} if after else {})}
        body = http.get("/files", params=params).json()
        ids = [f["id"] for f in body["data"]]
        assert (body["first_id"], body["last_id"]) == (ids[0], ids[-1])
        pages.append((ids, body["has_more"]))
        seen += ids
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert seen == seven_files
    assert [len(ids) for ids, _ in pages] == [2, 2, 2, 1]
    assert [more for _, more in pages] == [True, True, True, False]


def test_sdk_auto_pagination(client, seven_files):
    first = client.files.list(limit=2, order="asc")
    assert [len(page.data) for page in first.iter_pages()] == [2, 2, 2, 1]
    assert [f.id for f in client.files.list(limit=2, order="asc")] == seven_files
    assert [f.id for f in client.files.list(limit=2)] == seven_files[::-1]


def test_before_cursor(http, seven_files):
    """`before` pages towards the start of the list: the `limit` items just ahead of the cursor, in list order."""
    asc = http.get("/files", params={"order": "asc", "limit": 2, "before": seven_files[4]}).json()
    assert [f["id"] for f in asc["data"]] == seven_files[2:4]
    assert asc["has_more"] is True
    desc = http.get("/files", params={"order": "desc", "limit": 2, "before": seven_files[4]}).json()
    assert [f["id"] for f in desc["data"]] == [seven_files[6], seven_files[5]]
    assert desc["has_more"] is False
    start = http.get("/files", params={"order": "asc", "before": seven_files[0]}).json()
    assert start["data"] == [] and start["has_more"] is False


@pytest.mark.parametrize(
    ("params", "param"),
    [({"limit": 0}, "limit"), ({"limit": 10001}, "limit"), ({"limit": -1}, "limit"), ({"limit": "ten"}, "limit"), ({"order": "sideways"}, "order")],
)
def test_bad_list_parameters(http, params, param):
    assert_openai_error(http.get("/files", params=params), 400, param=param)


# --- retrieve, delete, content --------------------------------------------------------------------


def test_unknown_file_is_404(client, http):
    assert_openai_error(http.get("/files/file-doesnotexist"), 404)
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-doesnotexist")


def test_delete(client, http):
    kept, gone = make_file(client).id, make_file(client).id
    body = client.files.with_raw_response.delete(gone).http_response.json()
    assert body == {"id": gone, "object": "file", "deleted": True}
    assert_matches_schema(body, "DeleteFileResponse")
    error = assert_openai_error(http.get(f"/files/{gone}"), 404)
    assert error["message"] == f"No such File object: {gone}"
    assert_openai_error(http.get(f"/files/{gone}/content"), 404)
    assert listed_ids(client) == [kept]


def test_delete_twice_is_404(client, http):
    file_id = make_file(client).id
    client.files.delete(file_id)
    error = assert_openai_error(http.delete(f"/files/{file_id}"), 404)
    assert error["message"] == f"No such File object: {file_id}"


def test_content_is_exact_for_every_byte_value(client):
    data = bytes(range(256)) * 4
    file = make_file(client, data, "all-bytes.bin")
    response = client.files.with_raw_response.content(file.id)
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert client.files.content(file.id).content == data


def test_content_of_a_large_random_file(client):
    data = os.urandom(5 * 1024 * 1024 + 123)
    file = make_file(client, data, "blob.bin")
    assert file.bytes == len(data)
    response = client.files.with_raw_response.content(file.id)
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        (("data.jsonl", b"{}\n", "application/octet-stream"), "application/jsonl"),
        (("pic.png", PNG, "image/png"), "image/png"),
        (("pic.bin", PNG, "image/png"), "image/png"),  # the declared type wins over the name
        (("notes.txt", b"hi", "application/octet-stream"), "text/plain"),
        (("mystery", b"??", "application/octet-stream"), "application/octet-stream"),
    ],
)
def test_content_type(client, file, expected):
    file_id = client.files.create(file=file, purpose="assistants").id
    response = client.files.with_raw_response.content(file_id)
    assert response.headers["content-type"].split(";")[0] == expected
    assert file[0] in response.headers["content-disposition"]


# --- tenancy --------------------------------------------------------------------------------------


def test_other_tenant_cannot_see_or_touch_a_file(server, client):
    file = make_file(client, b"secret")
    with other_tenant(server) as intruder:
        with pytest.raises(openai.NotFoundError):
            intruder.files.retrieve(file.id)
        with pytest.raises(openai.NotFoundError):
            intruder.files.content(file.id)
        with pytest.raises(openai.NotFoundError):
            intruder.files.delete(file.id)
        assert [f.id for f in intruder.files.list()] == []
        # a cursor naming someone else's file does not leak anything either
        assert [f.id for f in intruder.files.list(after=file.id)] == []
    assert client.files.retrieve(file.id).id == file.id
    assert client.files.content(file.id).content == b"secret"
