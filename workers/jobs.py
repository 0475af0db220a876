"""The job functions: `async def job(ctx, **ids)`, registered by name in JOBS.

Each reads its truth from the database and writes idempotently, so running one twice (a retry, a
resume after a crash, an arq re-delivery) changes nothing the first run did not.
"""
from __future__ import annotations

import logging

log = logging.getLogger("understudy.jobs")


async def sweep_expired(ctx) -> None:
    """Deletes expired files, marks expired uploads, runs left waiting for tool outputs (reads already hide
    them) and idle containers (their files go)."""
    platform = ctx["platform"]
    files = await platform.files.sweep_expired()
    uploads = await platform.uploads.sweep_expired()
    runs = await platform.runs.sweep_expired()
    containers = await platform.containers.sweep_expired()
    if files or uploads or runs or containers:
        log.info("expired %d file(s), %d upload(s), %d run(s) waiting for tool outputs and %d container(s)", files, uploads, runs, containers)


async def ingest_file(ctx, vector_store_id: str, file_id: str) -> None:
    """Extracts, chunks, embeds and indexes one file of one vector store."""
    await ctx["platform"].ingestor.ingest(vector_store_id, file_id)


async def execute_run(ctx, run_id: str) -> None:
    """Executes an Assistants run up to its end or its next pause for tool outputs."""
    await ctx["platform"].run_executor.execute(run_id)


async def execute_response(ctx, response_id: str) -> None:
    """Executes a background response (from scratch when a restart interrupted it)."""
    await ctx["platform"].responses.execute(response_id)


async def execute_batch(ctx, batch_id: str) -> None:
    """Runs a batch's remaining lines and writes its output and error files. After the last attempt
    fails the batch is marked failed rather than left in progress."""
    try:
        await ctx["platform"].batch_job.execute(batch_id)
    except Exception as error:
        if ctx.get("job_try", 1) >= ctx.get("max_tries", 1):
            await ctx["platform"].batch_job.fail(batch_id, f"The batch could not be completed: {error}")
        raise


async def execute_eval_run(ctx, run_id: str) -> None:
    """Grades an eval run's remaining rows and sums its counts. After the last attempt fails the run is
    marked failed rather than left in progress."""
    try:
        await ctx["platform"].eval_job.execute(run_id)
    except Exception as error:
        if ctx.get("job_try", 1) >= ctx.get("max_tries", 1):
            await ctx["platform"].eval_job.fail(run_id, f"The eval run could not be completed: {error}")
        raise


async def train_fine_tune(ctx, job_id: str) -> None:
    """Runs (or resumes) a fine-tuning job's emulated training."""
    await ctx["platform"].fine_tuning.execute(job_id)


async def generate_video(ctx, video_id: str) -> None:
    """Advances a video's progress and renders it (from its stored progress after a restart)."""
    await ctx["platform"].videos.execute(video_id)


JOBS = {"generate_video": generate_video, "sweep_expired": sweep_expired, "ingest_file": ingest_file, "execute_run": execute_run, "execute_batch": execute_batch, "train_fine_tune": train_fine_tune, "execute_eval_run": execute_eval_run, "execute_response": execute_response}
