"""Migrations and the schema on real SQLite and the machine's real PostgreSQL, then a live server whose
metadata lives in PostgreSQL serving the Files and Uploads APIs to the official SDK."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
import time

import asyncpg
import httpx
import openai
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, insert, select, text

from storage.db import Database, alembic_config, current_revision
from storage.models import File, Job, Tenant, is_keyword_index, metadata
from tests.conftest import ROOT, new_key, start_server
from tests.support import pg

pytestmark = pytest.mark.anyio
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="session")
def pg_databases():
    """A factory of fresh, uniquely named PostgreSQL databases, all dropped when the session ends."""
    try:
        asyncio.run(pg.admin())
    except ConnectionError as error:
        pytest.skip(str(error))
    created: list[str] = []

    def new_database() -> str:
        created.append(pg.create_database())
        return created[-1]

    yield new_database
    for url in created:
        pg.drop_database(url)


@pytest.fixture
def pg_url(pg_databases) -> str:
    return pg_databases()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    return request.getfixturevalue("pg_databases")()


@pytest.fixture
async def db(db_url):
    database = Database(db_url)
    yield database
    await database.dispose()


async def schema(db: Database) -> dict[str, dict]:
    def _read(conn):
        inspector = inspect(conn)
        return {
            table: {
                "columns": {c["name"]: c for c in inspector.get_columns(table)},
                "indexes": {i["name"] for i in inspector.get_indexes(table)},
            }
            for table in inspector.get_table_names()
        }

    async with db.connect() as conn:
        return await conn.run_sync(_read)


async def test_migrate_creates_every_table_column_and_index(db):
    await db.migrate()
    tables = await schema(db)
    keyword_tables = {name for name in tables if is_keyword_index(name)}
    assert keyword_tables == ({"chunks_fts", "chunks_fts_config", "chunks_fts_data", "chunks_fts_docsize", "chunks_fts_idx"} if db.is_sqlite else set())
    if not db.is_sqlite:
        assert "ix_chunks_text_fts" in tables["chunks"]["indexes"]
    assert set(tables) - keyword_tables == set(metadata.tables) | {"alembic_version"}
    for name, table in metadata.tables.items():
        assert set(tables[name]["columns"]) == {c.name for c in table.columns}, name
        expected_indexes = {i.name for i in table.indexes}
        assert expected_indexes <= tables[name]["indexes"], name
    async with db.connect() as conn:
        assert await current_revision(conn) == HEAD
        # No drift: what the migrations built is what the models declare (Alembic's autogenerate diff).
        assert await conn.run_sync(_schema_drift) == []


def _schema_drift(conn) -> list:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": lambda obj, name, kind, reflected, other: not (reflected and is_keyword_index(name))}
    )
    return compare_metadata(context, metadata)


async def test_migrate_twice_is_a_no_op(db, caplog):
    with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
        await db.migrate()
        assert "Running upgrade" in caplog.text
        async with db.begin() as conn:
            await conn.execute(insert(Tenant.__table__).values(id="tenant_keep", key_hash="h" * 64, created_at=1))
        caplog.clear()
        await db.migrate()
        assert "Running upgrade" not in caplog.text
    async with db.connect() as conn:
        assert await current_revision(conn) == HEAD
        assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
        assert (await conn.execute(select(Tenant.__table__.c.id))).scalars().all() == ["tenant_keep"]
    # A second Database object (another process starting) finds the schema in place too.
    again = Database(db.url)
    try:
        await again.migrate()
        async with again.connect() as conn:
            assert await current_revision(conn) == HEAD
    finally:
        await again.dispose()


async def test_seq_auto_increments(db):
    await db.migrate()
    files, jobs = File.__table__, Job.__table__
    now = int(time.time())
    async with db.begin() as conn:
        for i in range(3):
            await conn.execute(
                insert(files).values(
                    id=f"file-{i}", tenant_id="t", created_at=now, filename=f"{i}.txt", purpose="assistants", bytes=8 * 1024**3, blob_key=f"k{i}"
                )
            )
            await conn.execute(insert(jobs).values(id=f"job_{i}", name="n", args={"i": i}, created_at=now, updated_at=now))
    async with db.connect() as conn:
        file_seqs = (await conn.execute(select(files.c.seq).order_by(files.c.id))).scalars().all()
        job_seqs = (await conn.execute(select(jobs.c.seq).order_by(jobs.c.id))).scalars().all()
        big = (await conn.execute(select(files.c.bytes).where(files.c.id == "file-0"))).scalar_one()
    assert all(isinstance(s, int) for s in file_seqs + job_seqs)
    assert file_seqs == sorted(set(file_seqs)) and len(file_seqs) == 3
    assert job_seqs == sorted(set(job_seqs)) and len(job_seqs) == 3
    assert big == 8 * 1024**3  # byte counts past 32 bits
    seq_type = (await schema(db))["files"]["columns"]["seq"]["type"]
    assert type(seq_type).__name__ == ("INTEGER" if db.is_sqlite else "BIGINT")


async def test_sqlite_is_in_wal_mode(tmp_path):
    path = tmp_path / "wal.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
        async with db.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await db.dispose()
    # WAL is a property of the file: a plain connection that sets nothing sees it too.
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.postgres
async def test_concurrent_migrations_on_postgresql_do_not_fail(pg_url):
    databases = [Database(pg_url) for _ in range(6)]
    try:
        # Without the advisory lock these deadlock on CREATE TABLE alembic_version: bound the wait.
        await asyncio.wait_for(asyncio.gather(*(d.migrate() for d in databases)), 60)
        async with databases[0].connect() as conn:
            assert await current_revision(conn) == HEAD
            assert (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
        assert set(await schema(databases[0])) == set(metadata.tables) | {"alembic_version"}
    finally:
        await asyncio.gather(*(d.dispose() for d in databases))


async def _pg_file_ids(url: str) -> set[str]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return {r["id"] for r in await conn.fetch("SELECT id FROM files")}
    finally:
        await conn.close()


@pytest.mark.postgres
def test_a_live_server_serves_files_and_uploads_on_postgresql(pg_url, tmp_path):
    url = pg_url
    server = start_server(tmp_path / "data", {"UNDERSTUDY_DATABASE_URL": url})
    try:
        health = httpx.get(f"{server.url}/healthz", timeout=10).json()
        assert health["database"] == "postgresql"
        alice = openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0)
        bob = openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0)
        content = "héllo postgres\n".encode() * 1000

        created = alice.files.create(file=("notes.txt", content), purpose="assistants")
        assert (created.object, created.bytes, created.filename, created.purpose) == ("file", len(content), "notes.txt", "assistants")
        assert [f.id for f in alice.files.list()] == [created.id]
        assert alice.files.retrieve(created.id) == created
        assert alice.files.content(created.id).read() == content

        # Another tenant sees nothing of it.
        assert list(bob.files.list()) == []
        with pytest.raises(openai.NotFoundError):
            bob.files.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            bob.files.delete(created.id)

        data = bytes(range(256)) * 4096  # 1 MiB in three parts
        upload = alice.uploads.upload_file_chunked(
            file=data, filename="blob.jsonl", bytes=len(data), mime_type="text/jsonl", purpose="batch", part_size=400_000
        )
        assert upload.status == "completed" and upload.file is not None
        assert upload.file.bytes == len(data)
        assert alice.files.content(upload.file.id).read() == data

        # The rows really are in PostgreSQL (no SQLite file was made).
        assert asyncio.run(_pg_file_ids(url)) == {created.id, upload.file.id}
        assert not (server.data_dir / "understudy.db").exists()

        deleted = alice.files.delete(created.id)
        assert (deleted.id, deleted.deleted) == (created.id, True)
        with pytest.raises(openai.NotFoundError):
            alice.files.retrieve(created.id)
        assert [f.id for f in alice.files.list()] == [upload.file.id]
        alice.close()
        bob.close()
    finally:
        assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


async def test_concurrent_migrations_on_a_fresh_sqlite_database(tmp_path):
    """Several Database objects in one process, and several processes, migrating one new file at once."""
    in_process = [Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}") for _ in range(4)]
    try:
        await asyncio.gather(*(db.migrate() for db in in_process))
        async with in_process[0].connect() as conn:
            assert await current_revision(conn) == HEAD
    finally:
        for db in in_process:
            await db.dispose()
    url = f"sqlite+aiosqlite:///{tmp_path / 'many.db'}"
    code = "import asyncio, sys; from storage.db import Database; asyncio.run(Database(sys.argv[1]).migrate())"
    processes = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, url, cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        for _ in range(4)
    ]
    results = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err.decode()[-500:] for _, err in results]


async def test_write_batches_commit_together_and_guard_a_compare_and_set(db):
    """`Database.write`: one transaction; a guarded first write that changes nothing writes nothing;
    a constraint violation raises SQLAlchemy's IntegrityError on both databases."""
    from sqlalchemy import bindparam, update
    from sqlalchemy.exc import IntegrityError
    from storage.prepared import Prepared

    await db.migrate()
    jobs = Job.__table__
    now = int(time.time())
    add = Prepared(insert(jobs).values(id=bindparam("id"), name="n", args=bindparam("args"), status=bindparam("status"),
                                       attempts=0, created_at=now, updated_at=now))
    claim = Prepared(update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.status == bindparam("b_from")).values(status=bindparam("b_to")))
    assert await db.write([(add, {"id": "job_a", "args": {"x": 1}, "status": "queued"}), (add, {"id": "job_b", "args": {}, "status": "queued"})])
    assert await db.write([(claim, {"b_id": "job_a", "b_from": "queued", "b_to": "running"}),
                           (add, {"id": "job_c", "args": {}, "status": "queued"})], guard=True)
    # job_a is no longer queued: the guard fails and job_d is not written.
    assert not await db.write([(claim, {"b_id": "job_a", "b_from": "queued", "b_to": "running"}),
                               (add, {"id": "job_d", "args": {}, "status": "queued"})], guard=True)
    with pytest.raises(IntegrityError):  # a duplicate key rolls the whole batch back
        await db.write([(add, {"id": "job_e", "args": {}, "status": "queued"}), (add, {"id": "job_a", "args": {}, "status": "queued"})])
    rows = await db.fetch_all(select(jobs.c.id, jobs.c.status, jobs.c.args).order_by(jobs.c.id))
    assert [(r.id, r.status, r.args) for r in rows] == [("job_a", "running", {"x": 1}), ("job_b", "queued", {}), ("job_c", "queued", {})]


async def test_traces_insert_once_and_keep_the_newest_per_tenant(db):
    """The ingest's upsert-or-skip and its pruning are dialect SQL: checked on SQLite and PostgreSQL."""
    from app.core.pagination import page_params
    from app.services.traces import TracesService

    await db.migrate()
    traces = TracesService(db, keep_traces=3, keep_spans=4)

    def batch(n: int) -> dict:
        trace = {"object": "trace", "id": f"trace_{n}", "workflow_name": "w"}
        span = {"object": "trace.span", "id": f"span_{n}", "trace_id": f"trace_{n}", "span_data": {"type": "custom"}}
        return {"data": [trace, span, dict(span, id=f"span_{n}b")]}

    for n in range(5):
        await traces.ingest("tenant-a", batch(n), 0)
        await traces.ingest("tenant-a", batch(n), 0)  # a retried export
    await traces.ingest("tenant-b", batch(0), 0)
    listed = await traces.list("tenant-a", page_params(100, "desc", None))
    assert [t["id"] for t in listed["data"]] == ["trace_4", "trace_3", "trace_2"]
    assert [s["id"] for s in (await traces.spans("tenant-a", "trace_4", page_params(100, "asc", None)))["data"]] == ["span_4", "span_4b"]
    assert [s["id"] for s in (await traces.spans("tenant-a", "trace_3", page_params(100, "asc", None)))["data"]] == ["span_3", "span_3b"]
    assert (await traces.spans("tenant-a", "trace_2", page_params(100, "asc", None)))["data"] == []
    assert [t["id"] for t in (await traces.list("tenant-b", page_params(100, "desc", None)))["data"]] == ["trace_0"]


async def test_a_status_compare_and_set_changes_a_row_only_from_an_expected_status(db):
    """storage/status.py, the guarded update every two-writer object uses (batches, runs, responses,
    fine-tuning jobs): one to four expected statuses, the SET columns written together."""
    from sqlalchemy import bindparam
    from storage.models import Batch
    from storage.prepared import Prepared
    from storage.status import guarded_params, guarded_update

    await db.migrate()
    batches = Batch.__table__
    add = Prepared(insert(batches).values({c: bindparam(c) for c in ("id", "tenant_id", "created_at", "status", "data")}))
    await db.write([(add, {"id": "batch_a", "tenant_id": "t", "created_at": 0, "status": "validating", "data": {"n": 0}})])
    save = guarded_update(batches, ("data",))

    async def move(status: str, expect, n: int) -> bool:
        return await db.write([(save, guarded_params("batch_a", {"status": status, "data": {"n": n}}, expect))], guard=True)

    assert await move("in_progress", "validating", 1)
    assert not await move("cancelling", "validating", 2)  # someone else moved it: nothing written
    assert not await move("cancelling", ("validating", "finalizing", "failed", "expired"), 3)
    assert await move("cancelling", ("validating", "finalizing", "in_progress"), 4)
    with pytest.raises(ValueError):
        guarded_params("batch_a", {"status": "x"}, ("a", "b", "c", "d", "e"))
    row = await db.fetch_one(select(batches.c.status, batches.c.data).where(batches.c.id == "batch_a"))
    assert (row.status, row.data) == ("cancelling", {"n": 4})
