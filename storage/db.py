"""The database: an async SQLAlchemy engine over SQLite (aiosqlite, WAL) or PostgreSQL (asyncpg).

Migrations are Alembic's, run at start-up (and by `understudy migrate`). Queries go through SQLAlchemy
Core on the SQLModel tables: the hot paths (id lookup, list pages) skip the ORM's identity map.

Bounded reads on SQLite (`fetch_one`, and `fetch_bounded` for a list page or a lookup of a page's keys)
run synchronously on the event loop over one persistent autocommit connection: in WAL mode a reader never
waits for a writer, an indexed lookup takes tens of microseconds, and aiosqlite would spend several thread
hand-offs (hundreds of microseconds) on it. `fetch_all` — whose size is the tenant's to choose (a whole
thread, every result of a batch) — and writes stay on the async engine, off the loop.
"""
from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import logging
import weakref
from pathlib import Path

from typing import Any

from alembic import command
from alembic.config import Config

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable

from storage.prepared import Prepared

log = logging.getLogger("understudy.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant: serialises concurrent migrators (several API processes starting at once) on PostgreSQL.
_MIGRATION_LOCK_ID = 7_202_611


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict = {"echo": echo}
        if self.is_sqlite:
            # No rollback when a connection returns to the pool: `begin()` blocks end in a commit or their
            # own rollback, and the extra statement is one more thread hop per transaction.
            kwargs.update(connect_args={"timeout": 30}, pool_reset_on_return=None)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._reader_engine = None
        self._reader: Connection | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self._reader_engine = create_engine(
                url.replace("+aiosqlite", "", 1), poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
            event.listen(self._reader_engine, "connect", _sqlite_pragmas)

    def _read_connection(self) -> Connection:
        if self._reader is None:
            self._reader = self._reader_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._reader

    async def fetch_all(self, query: Executable | Prepared, params: dict[str, Any] | None = None) -> list[Row]:
        """Every row, read off the event loop: for results of any size."""
        return await self._fetch(query, params, one=False, on_loop=False)

    async def fetch_bounded(self, query: Executable | Prepared, params: dict[str, Any] | None = None, *, plain: bool = False) -> list[Row]:
        """Every row of a query whose result is small by construction (a LIMIT, a page's keys): on SQLite,
        read on the loop like `fetch_one`. `plain`: rows may be bare tuples (index them, in column order)."""
        return await self._fetch(query, params, one=False, plain=plain)

    async def fetch_one(self, query: Executable | Prepared, params: dict[str, Any] | None = None) -> Row | None:
        return await self._fetch(query, params, one=True)

    async def _fetch(self, query: Executable | Prepared, params: dict[str, Any] | None, one: bool, on_loop: bool = True, plain: bool = False):
        if self._reader_engine is not None and on_loop:
            reader = self._read_connection()
            if isinstance(query, Prepared):
                return query.run_sqlite(reader.connection.dbapi_connection, self._reader_engine.dialect, params or {}, one, plain)
            result = reader.execute(query, params)
            return result.first() if one else result.all()
        if isinstance(query, Prepared):
            query = query.statement
        async with self.engine.connect() as conn:
            result = await conn.execute(query, params)
            return result.first() if one else result.all()

    async def write(self, ops: list[tuple[Prepared, dict[str, Any]]], *, guard: bool = False) -> bool:
        """Runs `ops` in one transaction. With `guard`, the first op must change a row (a compare-and-set)
        or nothing is written and this returns False.

        On SQLite the whole transaction is one hand-off to aiosqlite's thread, on the raw driver with
        statements compiled once: a small transaction costs ~0.2 ms instead of ~0.7 ms through the async
        engine (a begin, an execute and a commit are each a thread hop). Runs write several per step."""
        if not self.is_sqlite:
            return await _write_in_transaction(self.engine.begin(), ops, guard)
        dialect = self.engine.dialect
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            try:  # aiosqlite's own hand-off to its thread (storage/selftest.py checks it at start-up)
                return await driver._execute(_write_sqlite, driver._conn, dialect, ops, guard)
            except sqlite3.IntegrityError as error:  # as the async engine would raise it
                raise IntegrityError(None, None, error) from error

    def connect(self):
        """A connection for reads (autocommit-free; nothing to roll back)."""
        return self.engine.connect()

    def begin(self):
        """A connection in a transaction, committed when the block exits cleanly."""
        return self.engine.begin()

    async def migrate(self) -> None:
        """Concurrent migrators (several API processes starting at once) take turns: PostgreSQL's
        advisory lock, or for SQLite a lock file beside the database. Within one process Alembic's
        context is global, so migrations there take turns on an asyncio lock too."""
        async with _migrating():
            if not self.is_sqlite:
                async with self.engine.begin() as conn:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                    await conn.run_sync(_upgrade_to_head)
                return
            lock_path = make_url(self.url).database + ".migrate-lock"
            lock = await asyncio.to_thread(_lock_file, lock_path)
            try:
                async with self.engine.begin() as conn:
                    await conn.run_sync(_upgrade_to_head)
            finally:
                lock.close()  # closing the file releases the flock

    async def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._reader_engine is not None:
            self._reader_engine.dispose()
        await self.engine.dispose()


_migration_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def _migrating() -> asyncio.Lock:
    """One lock per event loop (an asyncio.Lock belongs to the loop it was first used on)."""
    loop = asyncio.get_running_loop()
    lock = _migration_locks.get(loop)
    if lock is None:
        lock = _migration_locks[loop] = asyncio.Lock()
    return lock


def _lock_file(path: str):
    handle = open(path, "a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


class _Unchanged(Exception):
    """The guarded first write changed nothing: the transaction is rolled back."""


async def _write_in_transaction(transaction, ops, guard: bool) -> bool:
    """`Database.write` through SQLAlchemy: `transaction` is `engine.begin()`."""
    try:
        async with transaction as conn:
            for index, (query, params) in enumerate(ops):
                result = await conn.execute(query.statement, params)
                if guard and index == 0 and result.rowcount != 1:
                    raise _Unchanged()
    except _Unchanged:
        return False
    return True


def _write_sqlite(connection, dialect, ops, guard: bool) -> bool:
    """In aiosqlite's thread: the ops as one immediate transaction on the sqlite3 connection."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        for index, (query, params) in enumerate(ops):
            if query.execute_sqlite(connection, dialect, params) != 1 and guard and index == 0:
                connection.execute("ROLLBACK")
                return False
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return True


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def current_revision(conn: AsyncConnection) -> str | None:
    def _read(sync_conn: Connection) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(sync_conn).get_current_revision()

    return await conn.run_sync(_read)
