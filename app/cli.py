"""`understudy serve | worker | migrate | keys`."""
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


def _check_script(settings: Settings) -> None:
    """A bad UNDERSTUDY_SCRIPT stops the start with its reason, before any process is forked."""
    if settings.script:
        from app.services.script.service import load_script

        try:
            load_script(settings.script)
        except ValueError as error:
            raise click.ClickException(str(error)) from None


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
    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a bad setting: one clear line, not a traceback
        raise click.ClickException(str(exc)) from None
    _configure_logging(settings.log_level)
    if workers > 1 and not settings.redis_url:
        # Jobs and their events would stay inside the process that started them.
        raise click.UsageError("--workers above 1 needs team mode: set UNDERSTUDY_REDIS_URL (and a shared database and blob store)")
    _check_script(settings)
    from app.serving import run_options

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
        workers=workers if workers > 1 else None,
        **run_options(settings),  # header size and deadline, connection cap, keep-alive (app/serving.py)
        # /v1/realtime: websockets' sans-I/O protocol (the maintained one; uvicorn's "websockets" is the
        # deprecated legacy API), one message at most realtime_max_message_bytes (larger: closed with 1009).
        ws="websockets-sansio",
        ws_max_size=settings.realtime_max_message_bytes,
        ws_per_message_deflate=False,
    )


@main.command()
@click.option("--data-dir", default=None, help="Where local files live (UNDERSTUDY_DATA_DIR).")
def worker(data_dir: str | None) -> None:
    """Run jobs from Redis (team mode: UNDERSTUDY_REDIS_URL) in the foreground; Ctrl-C stops it."""
    from workers.arq_worker import run_worker

    settings = Settings.from_env(data_dir=data_dir)
    _configure_logging(settings.log_level)
    _check_script(settings)
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


@main.group()
def keys() -> None:
    """Issue, list and revoke API keys (keys mode: UNDERSTUDY_AUTH=keys). Works on the database directly."""


def _run_with_keys(data_dir: str | None, action):
    """Runs `action(ApiKeysService)` against the configured database; revocations are broadcast on Redis
    when UNDERSTUDY_REDIS_URL is set (otherwise API processes forget a revoked key within a second)."""
    settings = Settings.from_env(data_dir=data_dir)
    logging.basicConfig(level="WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run():
        from app.events import RedisEventBus
        from app.services.api_keys import ApiKeysService
        from storage.db import Database

        db = Database(settings.resolved_database_url)
        bus = RedisEventBus(settings.redis_url) if settings.redis_url else None
        try:
            await db.migrate()
            return await action(ApiKeysService(db, bus))
        finally:
            if bus is not None:
                await bus.close()
            await db.dispose()

    from app.core.errors import APIError

    try:
        return asyncio.run(run())
    except APIError as error:
        raise click.ClickException(error.message) from None


@keys.command("create")
@click.option("--project", default=None, help="Project name (created if new) or id (proj_…).")
@click.option("--name", default=None, help="A name for the key.")
@click.option("--admin", is_flag=True, help="Issue an admin key (for /v1/organization/*) instead of a project key.")
@click.option("--data-dir", default=None, help="Where SQLite lives (UNDERSTUDY_DATA_DIR).")
def keys_create(project: str | None, name: str | None, admin: bool, data_dir: str | None) -> None:
    """Issue a key and print it (only here, only once: just its hash is stored)."""
    if admin == (project is not None):
        raise click.UsageError("give either --project NAME or --admin")

    async def action(service):
        if admin:
            body, secret = await service.issue_admin(name or "Admin key")
            click.echo(f"admin key {body['id']} ({body['name']})", err=True)
        else:
            project_body, body, secret = await service.issue_for_project(project, name)
            click.echo(f"key {body['id']} for project {project_body['name']} ({project_body['id']})", err=True)
        click.echo(secret)

    _run_with_keys(data_dir, action)


@keys.command("list")
@click.option("--data-dir", default=None, help="Where SQLite lives (UNDERSTUDY_DATA_DIR).")
def keys_list(data_dir: str | None) -> None:
    """Every issued key: id, kind, project, name, redacted value, creation and last use."""
    import datetime

    def when(ts):
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"

    async def action(service):
        rows = await service.all_keys()
        names = {}
        for row in rows:
            if row.project_id and row.project_id not in names:
                try:
                    names[row.project_id] = (await service.projects.get(row.project_id))["name"]
                except Exception:  # noqa: BLE001 — a key of a vanished project still lists
                    names[row.project_id] = "?"
        click.echo("\t".join(("ID", "KIND", "PROJECT", "PROJECT_ID", "NAME", "KEY", "CREATED", "LAST_USED")))
        for row in rows:
            click.echo("\t".join((row.id, row.kind, names.get(row.project_id, "-"), row.project_id or "-", row.name or "-",
                                   row.redacted_value, when(row.created_at), when(row.last_used_at))))

    _run_with_keys(data_dir, action)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--data-dir", default=None, help="Where SQLite lives (UNDERSTUDY_DATA_DIR).")
def keys_revoke(key_id: str, data_dir: str | None) -> None:
    """Revoke (delete) a key by id (key_…); it stops working in every API process within a second."""

    async def action(service):
        if not await service.revoke(key_id):
            raise click.ClickException(f"no such key: {key_id}")
        click.echo(f"revoked {key_id}")

    _run_with_keys(data_dir, action)


if __name__ == "__main__":
    main()
