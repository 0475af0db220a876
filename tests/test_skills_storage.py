"""The Skills service on every storage pairing: SQLite and PostgreSQL × the file system and S3 (`weed mini`).
A skill's versions, their numbers, default and latest, its zips in the blob store, and its delete."""
from __future__ import annotations

import io
import zipfile

import pytest

from app.core.errors import APIError
from app.core.pagination import page_params
from app.services.skills.service import SkillsService
from storage.blobs.fs import FileSystemBlobStore
from storage.db import Database
from tests.test_blobs import _s3_store, s3_server  # noqa: F401 (fixtures)
from tests.test_db import pg_databases  # noqa: F401 (fixture)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'u.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_databases")()


@pytest.fixture
async def db(db_url):
    database = Database(db_url)
    await database.migrate()
    yield database
    await database.dispose()


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
async def blobs(request, tmp_path):
    store = FileSystemBlobStore(tmp_path / "blobs") if request.param == "filesystem" else _s3_store(request.getfixturevalue("s3_server"))
    yield store
    await store.close()


def skill_zip(description: str, extra: bytes = b"data") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("tool/SKILL.md", f"---\nname: tool\ndescription: {description}\n---\nbody\n")
        archive.writestr("tool/data.bin", extra)
    return out.getvalue()


async def test_skills_and_versions_on_every_backend(db, blobs):
    service = SkillsService(db, blobs, max_bytes=1 << 20)
    skill = await service.create("t1", [("s.zip", skill_zip("One.", b"\x00\x01"))])
    await service.create("t2", [("s.zip", skill_zip("Other tenant."))])
    v2 = await service.create_version("t1", skill["id"], [("s.zip", skill_zip("Two.", b"two"))], make_default=True)
    assert (v2["version"], (await service.get("t1", skill["id"]))["description"]) == ("2", "Two.")
    name, data = await service.content("t1", skill["id"])
    assert name == "tool.zip" and zipfile.ZipFile(io.BytesIO(data)).read("tool/data.bin") == b"two"
    assert (await service.files("t1", skill["id"], "1")).files["data.bin"] == b"\x00\x01"
    listed = await service.list_versions("t1", skill["id"], page_params(None, "asc", None))
    assert [v["version"] for v in listed["data"]] == ["1", "2"]
    assert [s["id"] for s in (await service.list("t1", page_params(None, None, None)))["data"]] == [skill["id"]]
    await service.update("t1", skill["id"], "1")
    await service.delete_version("t1", skill["id"], "2")
    v3 = await service.create_version("t1", skill["id"], [("s.zip", skill_zip("Three."))], make_default=False)
    assert v3["version"] == "3"
    with pytest.raises(APIError) as error:
        await service.get("t2", skill["id"])
    assert error.value.status_code == 404
    keys = [f"t1/skills/{skill['id']}/{v3['id']}.zip"]
    assert await blobs.exists(keys[0])
    await service.delete("t1", skill["id"])
    assert not await blobs.exists(keys[0])
    with pytest.raises(APIError):
        await service.get("t1", skill["id"])
    assert len((await service.list("t2", page_params(None, None, None)))["data"]) == 1
