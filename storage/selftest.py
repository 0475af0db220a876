"""Start-up checks of the private library APIs the storage hot paths lean on.

pyproject.toml bounds these libraries and requirements.lock pins them; these checks catch what slips
past both (a refreshed lock, a hand-installed version): the server refuses to start, naming what
changed, instead of writing through a slow path or reading wrong rows.
- storage/prepared.py compiles statements with SQLAlchemy and reads `_bind_processors`,
  `_result_columns` and `_cached_result_processor` off the compiled form;
- storage/db.py runs a whole SQLite transaction on aiosqlite's thread through `Connection._execute`
  and the raw `sqlite3.Connection` at `_conn`.
"""
from __future__ import annotations

import sqlite3

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, bindparam, select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from storage.prepared import Prepared


class LibraryInternalsChanged(RuntimeError):
    """An installed library no longer has the private API the storage layer relies on."""


def _fail(library: str, what: str, error: BaseException | None = None) -> LibraryInternalsChanged:
    return LibraryInternalsChanged(
        f"{library} changed a private API Understudy relies on ({what}"
        f"{f': {error!r}' if error is not None else ''}); install the versions in requirements.lock (make install)"
    )


def check_sqlalchemy() -> None:
    """A prepared statement with a bound parameter and a JSON column, run on an in-memory SQLite."""
    table = Table("selftest", MetaData(), Column("id", String, primary_key=True), Column("seq", Integer), Column("data", JSON))
    statement = Prepared(select(table.c.id, table.c.seq, table.c.data).where(table.c.id == bindparam("id")))
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE selftest (id TEXT PRIMARY KEY, seq INTEGER, data JSON)")
        connection.execute("INSERT INTO selftest VALUES ('a', 1, '{\"k\": [1, 2]}')")
        row = statement.run_sqlite(connection, sqlite_dialect.dialect(), {"id": "a"}, one=True)
    except (AttributeError, KeyError, TypeError) as error:
        raise _fail("SQLAlchemy", "the compiled statement's bind/result processors", error) from error
    finally:
        connection.close()
    if row is None or (row.id, row.seq, row.data) != ("a", 1, {"k": [1, 2]}):
        raise _fail("SQLAlchemy", f"a prepared statement read {row!r} instead of ('a', 1, {{'k': [1, 2]}})")


async def check_aiosqlite() -> None:
    """A function run on aiosqlite's thread, handed the raw sqlite3 connection, as Database.write does."""
    import aiosqlite

    if not callable(getattr(aiosqlite.Connection, "_execute", None)):
        raise _fail("aiosqlite", "Connection._execute is gone")
    async with aiosqlite.connect(":memory:") as connection:
        try:
            raw = connection._conn
            answer = await connection._execute(lambda conn: conn.execute("SELECT 41 + 1").fetchone()[0], raw)
        except (AttributeError, TypeError, ValueError) as error:
            raise _fail("aiosqlite", "Connection._execute(fn, *args) on Connection._conn", error) from error
    if not isinstance(raw, sqlite3.Connection) or answer != 42:
        raise _fail("aiosqlite", f"Connection._conn is {type(raw).__name__}, _execute answered {answer!r}")


async def check_storage_internals() -> None:
    check_sqlalchemy()
    await check_aiosqlite()
