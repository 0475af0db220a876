"""Fresh PostgreSQL databases on the machine's server (127.0.0.1:5432, trust auth, database `test`), for
tests and benchmarks: each gets a database of its own, dropped afterwards."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import contextmanager

import asyncpg

PG = dict(host="127.0.0.1", port=5432, database="test")


async def admin(sql: str | None = None) -> str:
    """Runs `sql` (if any) as the first role that connects; returns that role's name."""
    errors = []
    for user in ("postgres", "root"):
        try:
            conn = await asyncpg.connect(user=user, timeout=5, **PG)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as error:
            errors.append(f"{user}: {error!r}")
            continue
        try:
            if sql:
                await conn.execute(sql)
            return await conn.fetchval("SELECT current_user")
        finally:
            await conn.close()
    raise ConnectionError("no PostgreSQL on 127.0.0.1:5432: " + "; ".join(errors))


def create_database(prefix: str = "understudy_t") -> str:
    """A new, uniquely named database's SQLAlchemy URL. Raises ConnectionError without PostgreSQL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    user = asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    return f"postgresql+asyncpg://{user}@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


@contextmanager
def fresh_database(prefix: str = "understudy_t"):
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)
