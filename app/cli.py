"""`understudy serve | worker | migrate`."""
from __future__ import annotations

import asyncio
import logging
import os

import click

from app.settings import Settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic narrates every plugin it loads at INFO; its warnings still show.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group()
def main() -> None:
    """Understudy: a self-hosted stand-in for the OpenAI API."""


@main.command()
@click.option("--host", default=None, help="Interface to bind (UNDERSTUDY_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (UNDERSTUDY_PORT, default 8000).")
@click.option("--data-dir", default=None, help="Where SQLite and blobs live (UNDERSTUDY_DATA_DIR, default ./data).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="API processes sharing the port (team mode: PostgreSQL, Redis and S3 make any of them able to serve any request).")
def serve(host: str | None, port: int | None, data_dir: str | None, workers: int) -> None:
    """Serve the API in the foreground; Ctrl-C stops it."""
    import uvicorn

    # Options become environment so every uvicorn worker process builds the same settings.
    for name, value in (("HOST", host), ("PORT", port), ("DATA_DIR", data_dir)):
        if value is not None:
            os.environ[f"UNDERSTUDY_{name}"] = str(value)
    settings = Settings.from_env()
    _configure_logging(settings.log_level)
    if workers > 1 and not settings.redis_url:
        # Jobs and their events would stay inside the process that started them.
        raise click.UsageError("--workers above 1 needs team mode: set UNDERSTUDY_REDIS_URL (and a shared database and blob store)")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        workers=workers if workers > 1 else None,
    )


@main.command()
@click.option("--data-dir", default=None, help="Where local files live (UNDERSTUDY_DATA_DIR).")
def worker(data_dir: str | None) -> None:
    """Run jobs from Redis (team mode: UNDERSTUDY_REDIS_URL) in the foreground; Ctrl-C stops it."""
    from workers.arq_worker import run_worker

    settings = Settings.from_env(data_dir=data_dir)
    _configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    run_worker(settings)


@main.command()
@click.option("--data-dir", default=None, help="Where SQLite lives (UNDERSTUDY_DATA_DIR).")
def migrate(data_dir: str | None) -> None:
    """Bring the database schema to the latest revision."""
    settings = Settings.from_env(data_dir=data_dir)
    _configure_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        from storage.db import Database, current_revision

        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
            async with db.connect() as conn:
                click.echo(f"database at revision {await current_revision(conn)}")
        finally:
            await db.dispose()

    asyncio.run(run())


if __name__ == "__main__":
    main()
