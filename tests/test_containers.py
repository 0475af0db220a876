"""/v1/containers through the official SDK: every method, pagination, expiry, tenancy, bad input, the byte cap."""
from __future__ import annotations

import time

import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A server of its own whose container "minute" is one second and whose containers hold 1 KB, with a fast sweep."""
    srv = start_server(tmp_path_factory.mktemp("containers"), {"UNDERSTUDY_CONTAINER_MINUTE_SECONDS": "1",
                                                               "UNDERSTUDY_CONTAINER_MAX_BYTES": "1024",
                                                               "UNDERSTUDY_SWEEP_INTERVAL_SECONDS": "0.5"})
    yield srv
    srv.stop()


def _sdk(url: str, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key or new_key(), max_retries=0)


def test_create_retrieve_list_delete(client, http):
    made = client.containers.create(name="work", expires_after={"anchor": "last_active_at", "minutes": 5}, memory_limit="4g")
    assert made.id.startswith("cntr_") and made.object == "container" and made.status == "running" and made.name == "work"
    assert made.expires_after.anchor == "last_active_at" and made.expires_after.minutes == 5 and made.memory_limit == "4g"
    assert made.last_active_at >= made.created_at
    raw = http.get(f"/containers/{made.id}").json()
    assert_matches_schema(raw, "ContainerResource")
    assert client.containers.retrieve(made.id).id == made.id
    default = client.containers.create(name="other")
    assert default.expires_after.minutes == 20 and default.memory_limit == "1g"
    listed = http.get("/containers").json()
    assert_matches_schema(listed, "ContainerListResource")
    assert [c["id"] for c in listed["data"]] == [default.id, made.id]
    assert [c.id for c in client.containers.list(name="work")] == [made.id]
    deleted = http.delete(f"/containers/{made.id}")
    assert deleted.json() == {"id": made.id, "object": "container.deleted", "deleted": True}
    assert client.containers.delete(default.id) is None  # the SDK's delete returns nothing
    assert_openai_error(http.get(f"/containers/{made.id}"), 404, param="container_id")
    assert client.containers.list().data == []


def test_pagination(client):
    ids = [client.containers.create(name=f"c{i}").id for i in range(5)]
    first = client.containers.list(limit=2, order="asc")
    assert [c.id for c in first.data] == ids[:2] and first.has_more
    assert [c.id for c in client.containers.list(limit=2, order="asc", after=ids[1]).data] == ids[2:4]
    assert [c.id for c in client.containers.list(order="asc")] == ids  # the SDK's auto-pagination
    assert [c.id for c in client.containers.list(limit=2)] == ids[::-1]
    for container_id in ids:
        client.containers.files.create(container_id, file=("a.txt", b"a"))
    files = [client.containers.files.create(ids[0], file=(f"f{i}.txt", b"x")).id for i in range(3)]
    page = client.containers.files.list(ids[0], limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    assert [f.id for f in client.containers.files.list(ids[0], order="asc")][1:] == files


def test_files_upload_copy_list_retrieve_content_delete(client, http):
    container = client.containers.create(name="files")
    uploaded = client.containers.files.create(container.id, file=("data.csv", b"a,b\n1,2\n"))
    assert uploaded.id.startswith("cfile_") and uploaded.object == "container.file" and uploaded.container_id == container.id
    assert uploaded.path == "/mnt/data/data.csv" and uploaded.source == "user" and uploaded.bytes == 8
    source = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    copied = client.containers.files.create(container.id, file_id=source.id)
    assert copied.path == "/mnt/data/notes.txt" and copied.bytes == 5 and copied.source == "user"
    raw = http.get(f"/containers/{container.id}/files/{copied.id}").json()
    assert_matches_schema(raw, "ContainerFileResource")
    listed = http.get(f"/containers/{container.id}/files").json()
    assert_matches_schema(listed, "ContainerFileListResource")
    assert [f["id"] for f in listed["data"]] == [copied.id, uploaded.id]
    assert client.containers.files.retrieve(uploaded.id, container_id=container.id).path == "/mnt/data/data.csv"
    assert client.containers.files.content.retrieve(uploaded.id, container_id=container.id).read() == b"a,b\n1,2\n"
    assert http.delete(f"/containers/{container.id}/files/{uploaded.id}").json() == {
        "id": uploaded.id, "object": "container.file.deleted", "deleted": True}
    assert client.containers.files.delete(copied.id, container_id=container.id) is None
    assert client.containers.files.list(container.id).data == []
    assert_openai_error(http.get(f"/containers/{container.id}/files/{uploaded.id}"), 404, param="file_id")
    made = client.containers.create(name="seeded", file_ids=[source.id])
    assert [f.path for f in client.containers.files.list(made.id)] == ["/mnt/data/notes.txt"]
    # last_active_at moves on with use
    assert client.containers.retrieve(made.id).last_active_at >= made.last_active_at


def test_tenancy(client, server):
    container = client.containers.create(name="mine")
    cfile = client.containers.files.create(container.id, file=("a.txt", b"a"))
    with _sdk(server.url) as other:
        with pytest.raises(openai.NotFoundError):
            other.containers.retrieve(container.id)
        with pytest.raises(openai.NotFoundError):
            other.containers.files.retrieve(cfile.id, container_id=container.id)
        with pytest.raises(openai.NotFoundError):
            other.containers.files.content.retrieve(cfile.id, container_id=container.id)
        with pytest.raises(openai.NotFoundError):
            other.containers.delete(container.id)
        assert other.containers.list().data == []
        other_file = other.files.create(file=("theirs.txt", b"x"), purpose="user_data")
        # last on this client: a 404 answered before the upload's body was read may close the connection (app/serving.py)
        with pytest.raises(openai.NotFoundError):
            other.containers.files.create(container.id, file=("b.txt", b"b"))
    with pytest.raises(openai.NotFoundError):
        client.containers.files.create(container.id, file_id=other_file.id)  # another tenant's File
    assert client.containers.retrieve(container.id).status == "running"


def test_bad_input(client, http):
    assert_openai_error(http.post("/containers", json={}), 400, param="name", code="missing_required_parameter")
    assert_openai_error(http.post("/containers", json={"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}}), 400,
                        param="expires_after.anchor")
    assert_openai_error(http.post("/containers", json={"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}}), 400,
                        param="expires_after.minutes", code="integer_out_of_range")
    assert_openai_error(http.post("/containers", json={"name": "x", "expires_after": {"anchor": "last_active_at"}}), 400,
                        param="expires_after.minutes")
    assert_openai_error(http.post("/containers", json={"name": "x", "memory_limit": "2g"}), 400, param="memory_limit")
    assert_openai_error(http.post("/containers", json={"name": "x", "file_ids": ["file-nope"]}), 404, param="file_id")
    assert_openai_error(http.post("/containers", json={"name": "x", "colour": "red"}), 400, param="colour", code="unknown_parameter")
    assert_openai_error(http.get("/containers/cntr_nope"), 404, param="container_id")
    assert_openai_error(http.get("/containers?limit=101"), 400, param="limit")
    container = client.containers.create(name="x")
    assert_openai_error(http.get(f"/containers/{container.id}/files/cfile_nope"), 404, param="file_id")
    assert_openai_error(http.get(f"/containers/{container.id}/files/cfile_nope/content"), 404, param="file_id")
    assert_openai_error(http.post(f"/containers/{container.id}/files", json={}), 400, param="file", code="missing_required_parameter")
    assert_openai_error(http.post(f"/containers/{container.id}/files", json={"file_id": "file-nope"}), 404, param="file_id")
    escaped = http.post(f"/containers/{container.id}/files", files={"file": ("../../etc/x.txt", b"x")})
    assert escaped.json()["path"] == "/mnt/data/x.txt"  # a form's file name is its last component


def test_expiry_and_the_sweep(quick):
    with _sdk(quick.url) as sdk:
        container = sdk.containers.create(name="short", expires_after={"anchor": "last_active_at", "minutes": 2})
        cfile = sdk.containers.files.create(container.id, file=("a.txt", b"a"))
        kept = sdk.containers.create(name="kept", expires_after={"anchor": "last_active_at", "minutes": 3})
        for _ in range(4):  # used every second: its 3 s idle limit never passes
            time.sleep(1)
            sdk.containers.files.list(kept.id)
        assert sdk.containers.retrieve(kept.id).status == "running"
        # the other one was idle all along: the sweep expired it, and its files went with it
        swept = sdk.containers.retrieve(container.id)
        assert swept.status == "expired"
        with pytest.raises(openai.BadRequestError) as raised:
            sdk.containers.files.content.retrieve(cfile.id, container_id=container.id)
        assert raised.value.code == "container_expired"
        assert [c.status for c in sdk.containers.list(order="asc")] == ["expired", "running"]
        assert sdk.containers.delete(kept.id) is None
        # last on this client: a 400 answered before the upload's body was read may close the connection (app/serving.py)
        with pytest.raises(openai.BadRequestError):
            sdk.containers.files.create(container.id, file=("b.txt", b"b"))
    with _sdk(quick.url, sdk.api_key) as again:
        assert again.containers.delete(container.id) is None  # an expired container can still be deleted


def test_byte_cap(quick):
    # A fresh client per refused upload: the server may answer a 413 before reading the body (see app/serving.py).
    with _sdk(quick.url) as sdk:
        container = sdk.containers.create(name="small")
        sdk.containers.files.create(container.id, file=("a.bin", b"a" * 600))
        key = sdk.api_key
    with _sdk(quick.url, key) as sdk:
        with pytest.raises(openai.APIStatusError) as raised:
            sdk.containers.files.create(container.id, file=("b.bin", b"b" * 600))
        assert raised.value.status_code == 413
    with _sdk(quick.url, key) as sdk:
        sdk.containers.files.create(container.id, file=("a.bin", b"c" * 1000))  # replacing a file frees its bytes
        assert [(f.path, f.bytes) for f in sdk.containers.files.list(container.id)] == [("/mnt/data/a.bin", 1000)]
