"""API keys and tenants, the headers every response carries, and OpenAI's error body for client mistakes."""
from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key

UPLOAD = {"bytes": 12, "filename": "a.txt", "mime_type": "text/plain", "purpose": "assistants"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


# --- authentication -------------------------------------------------------------------------------


def test_no_key_is_401(server):
    error = assert_openai_error(httpx.get(f"{server.url}/v1/files"), 401)
    assert "API key" in error["message"]


@pytest.mark.parametrize("authorization", ["Basic x", "Bearer", "Token sk-abc123456"])
def test_malformed_authorization_is_401(server, authorization):
    response = httpx.get(f"{server.url}/v1/files", headers={"Authorization": authorization})
    assert_openai_error(response, 401, code="invalid_api_key")


def test_bearer_with_empty_token_is_401(server):
    """`Bearer ` with a trailing space: httpx refuses to send that header, so write the request by hand."""
    url = urlsplit(server.url)
    request = f"GET /v1/files HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer \r\nConnection: close\r\n\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def test_key_without_sk_prefix_is_rejected_without_echoing_it(server):
    """An invalid key is 401 invalid_api_key; the message may hint at it but never repeats it whole."""
    key = "not-a-key-" + new_key()[8:]
    error = assert_openai_error(httpx.get(f"{server.url}/v1/files", headers=bearer(key)), 401, code="invalid_api_key")
    assert key not in error["message"]


def test_sdk_raises_authentication_error_with_request_id(server):
    with sdk(server, "bad-key-1234567890") as bad, pytest.raises(openai.AuthenticationError) as caught:
        bad.files.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id.startswith("req_")


def test_x_api_key_is_the_same_tenant_as_bearer(server, client):
    """Anthropic-style clients send `x-api-key`; the same key must reach the same tenant's objects."""
    created = client.files.create(file=("a.txt", b"x"), purpose="assistants")
    response = httpx.get(f"{server.url}/v1/files/{created.id}", headers={"x-api-key": client.api_key})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == created.id


def test_x_api_key_is_checked_like_bearer(server):
    response = httpx.get(f"{server.url}/v1/files", headers={"x-api-key": "nope-key-12345678"})
    assert_openai_error(response, 401, code="invalid_api_key")


def test_another_tenant_sees_404_exactly_like_an_unknown_id(server, client):
    """Another tenant's file must be indistinguishable from one that does not exist."""
    created = client.files.create(file=("a.txt", b"x"), purpose="assistants")
    with httpx.Client(base_url=f"{server.url}/v1", headers=bearer(new_key())) as other:
        foreign = other.get(f"/files/{created.id}")
        unknown_id = created.id[:-4] + "zzzz"
        unknown = other.get(f"/files/{unknown_id}")
        foreign_error = assert_openai_error(foreign, 404)
        unknown_error = assert_openai_error(unknown, 404)
        assert foreign_error["message"] == f"No such File object: {created.id}"
        assert unknown_error["message"] == f"No such File object: {unknown_id}"
        assert (foreign_error["param"], foreign_error["code"]) == (unknown_error["param"], unknown_error["code"])
        assert_openai_error(other.delete(f"/files/{created.id}"), 404)
        assert other.get("/files").json()["data"] == []
    assert client.files.retrieve(created.id).id == created.id  # the failed delete left it alone


def test_sdk_raises_not_found_with_request_id(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.retrieve("file-doesnotexist")
    assert caught.value.request_id.startswith("req_")
    assert caught.value.body["message"] == "No such File object: file-doesnotexist"


def test_first_use_of_a_key_from_many_requests_makes_one_tenant(server):
    """Concurrent first requests with a new key must all land in one tenant, not race into several."""
    with sdk(server, new_key()) as fresh:
        with ThreadPoolExecutor(8) as pool:
            ids = set(pool.map(lambda i: fresh.files.create(file=(f"{i}.txt", b"x"), purpose="assistants").id, range(8)))
        assert {f.id for f in fresh.files.list()} == ids


def test_healthz_needs_no_key_and_names_backends(server):
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    for backend in ("database", "blobs", "jobs", "events"):
        assert isinstance(body[backend], str) and body[backend], body


# --- headers on every response --------------------------------------------------------------------

HEADER_CASES = {
    "success": ("GET", "/v1/models", True),
    "401": ("GET", "/v1/files", False),
    "404 unknown route": ("GET", "/v1/nope", True),
    "400": ("GET", "/v1/files?limit=abc", True),
    "405": ("PUT", "/v1/files", True),
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_openai_headers_on_every_response(server, case):
    method, path, with_key = HEADER_CASES[case]
    response = httpx.request(method, server.url + path, headers=bearer(new_key()) if with_key else {})
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["openai-processing-ms"].isdigit()
    assert response.headers["openai-version"]


def test_request_ids_are_unique(http):
    ids = [http.get(path).headers["x-request-id"] for path in ["/models", "/files", "/nope"] * 4]
    assert len(set(ids)) == len(ids)


# --- error bodies ---------------------------------------------------------------------------------


def test_unknown_route_is_invalid_url(http):
    error = assert_openai_error(http.get("/nope"), 404, param=None)
    assert error["message"] == "Invalid URL (GET /v1/nope)"


def test_wrong_method_is_openai_shaped(http):
    response = http.put("/files")
    error = assert_openai_error(response, response.status_code)
    assert response.status_code in (404, 405)
    assert error["message"] == "Invalid URL (PUT /v1/files)"


def test_malformed_json_is_400(http):
    assert_openai_error(http.post("/uploads", content=b'{"bytes": 12,'), 400, param=None)


def test_json_array_body_is_400(http):
    assert_openai_error(http.post("/uploads", json=[UPLOAD]), 400, param=None)


def test_wrong_type_is_invalid_type(http):
    assert_openai_error(http.post("/uploads", json={**UPLOAD, "bytes": "12"}), 400, param="bytes", code="invalid_type")


def test_missing_field_is_named(http):
    body = {k: v for k, v in UPLOAD.items() if k != "mime_type"}
    error = assert_openai_error(http.post("/uploads", json=body), 400, param="mime_type", code="missing_required_parameter")
    assert "mime_type" in error["message"]


def test_unknown_field_is_unknown_parameter(http):
    response = http.post("/uploads", json={**UPLOAD, "colour": "red"})
    assert_openai_error(response, 400, param="colour", code="unknown_parameter")


def test_bad_enum_is_invalid_value(http):
    assert_openai_error(http.post("/uploads", json={**UPLOAD, "purpose": "nope"}), 400, param="purpose", code="invalid_value")


def test_nested_unknown_field_names_its_path(http):
    expires_after = {"anchor": "created_at", "seconds": 3600, "foo": 1}
    response = http.post("/uploads", json={**UPLOAD, "expires_after": expires_after})
    assert_openai_error(response, 400, param="expires_after.foo", code="unknown_parameter")


def test_query_parameter_of_wrong_type_is_openai_shaped(http):
    """Litestar's own validation error (`detail`, `extra`) must not leak: assert_openai_error checks the keys."""
    assert_openai_error(http.get("/files", params={"limit": "abc"}), 400, param="limit", code="invalid_type")


def test_limit_zero_is_400(http):
    assert_openai_error(http.get("/files", params={"limit": 0}), 400, param="limit")


def _twenty_mb():
    for _ in range(20):
        yield b" " * 1024 * 1024


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_json_body_is_413(http, chunked):
    """Over the JSON size limit: refused as 413 in OpenAI's shape, with or without a Content-Length."""
    body = _twenty_mb() if chunked else b"".join(_twenty_mb())
    response = http.post("/uploads", content=body, headers={"content-type": "application/json"})
    assert_openai_error(response, 413)


BAD_REQUESTS = {
    "empty body": ("/uploads", b"", None),
    "form-encoded body": ("/uploads", b"bytes=12", "application/x-www-form-urlencoded"),
    "non-utf-8 json": ("/uploads", b'{"filename": "\xff\xfe"}', "application/json"),
    "utf-16 json": ("/uploads", json.dumps(UPLOAD).encode("utf-16"), "application/json"),
    "deeply nested json": ("/uploads", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "NaN": ("/uploads", b'{"bytes": NaN}', "application/json"),
    "multipart without boundary": ("/files", b"--x\r\n", "multipart/form-data"),
    "garbage multipart": ("/files", b"garbage", "multipart/form-data; boundary=abc"),
    "truncated multipart": ("/files", b"--abc\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nas", "multipart/form-data; boundary=abc"),
    "json to files": ("/files", b'{"purpose": "assistants"}', "application/json"),
    "text to parts": ("/uploads/upload_abc/parts", b"data", "text/plain"),
    "complete with non-list part_ids": ("/uploads/upload_abc/complete", b'{"part_ids": "part_1"}', "application/json"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_client_mistakes_are_400_never_500(http, case):
    path, content, content_type = BAD_REQUESTS[case]
    headers = {"content-type": content_type} if content_type else {}
    assert_openai_error(http.post(path, content=content, headers=headers), 400)


def test_query_parameter_type_error_in_openai_words(http):
    error = assert_openai_error(http.get("/files", params={"limit": "abc"}), 400, param="limit", code="invalid_type")
    assert error["message"] == "Invalid type for 'limit': expected an integer."
