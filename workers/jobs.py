"""The job functions: `async def job(ctx, **ids)`, registered by name in JOBS.

Each reads its truth from the database and writes idempotently, so running one twice (a retry, a
resume after a crash, an arq re-delivery) changes nothing the first run did not.
"""
from __future__ import annotations

import logging

log = logging.getLogger("understudy.jobs")


async def sweep_expired(ctx) -> None:
    """Deletes expired files and marks expired uploads (reads already hide them)."""
    platform = ctx["platform"]
    files = await platform.files.sweep_expired()
    uploads = await platform.uploads.sweep_expired()
    if files or uploads:
        log.info("expired %d file(s) and %d upload(s)", files, uploads)


async def ingest_file(ctx, vector_store_id: str, file_id: str) -> None:
    """Extracts, chunks, embeds and indexes one file of one vector store."""
    await ctx["platform"].ingestor.ingest(vector_store_id, file_id)


JOBS = {"sweep_expired": sweep_expired, "ingest_file": ingest_file}
