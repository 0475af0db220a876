"""Fine-tuning jobs: the API side (create, list, cancel, pause, resume) and the emulated training the
`train_fine_tune` job executes.

A job's truth is its row: status changes are compare-and-set on the status column (the API and the job
both write it), and training progress is the number of metrics events already written, so a restarted
job continues from the stored step and writes each step once.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import time

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from app.core.errors import APIError, invalid_request, not_found
from app.core.ids import new_id
from app.core.metadata import check_metadata
from app.core.pagination import Page, fetch_page, list_body
from app.services.fine_tuning import training
from app.services.fine_tuning.tuned_models import FineTunedModels, tuned
from app.services.inference import base_model
from storage.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from storage.prepared import Prepared
from storage.status import guarded_params, guarded_update

jobs = FineTuningJob.__table__
events = FineTuningEvent.__table__
checkpoints = FineTuningCheckpoint.__table__

_SAVE_IF = guarded_update(jobs, ("data",))
_INSERT_EVENT = Prepared(insert(events).values({c: bindparam(c) for c in ("id", "job_id", "tenant_id", "created_at", "data")}))
_INSERT_CHECKPOINT = Prepared(insert(checkpoints).values({c: bindparam(c) for c in ("id", "job_id", "tenant_id", "created_at", "data")}))
_INSERT_MODEL = Prepared(insert(tuned).values({c: bindparam(c) for c in ("id", "tenant_id", "created_at", "data")}))

TERMINAL = ("succeeded", "failed", "cancelled")
ORG = "understudy"


def _step_id(prefix: str, job_id: str, step: int) -> str:
    """A step's event and checkpoint ids are fixed by the job and step, so a step is written once."""
    return prefix + hashlib.sha256(f"{job_id}:{step}".encode()).hexdigest()[:24]


def organization_id(tenant_id: str) -> str:
    return "org-" + hashlib.sha256(tenant_id.encode()).hexdigest()[:24]


class FineTuningService:
    def __init__(self, db, files, queue, models, settings, rewards=None) -> None:
        self._db, self._files, self._queue, self._models, self._settings = db, files, queue, models, settings
        self._rewards = rewards  # RewardGrader: reinforcement jobs' graders, checked and run
        self._examples: dict[str, list[dict]] = {}  # a running reinforcement job's examples, by job id
        self.models_store = FineTunedModels(db)
        models.attach_fine_tuned(self.models_store)

    # ---- rows ----
    async def _row(self, job_id: str, tenant_id: str | None = None):
        query = select(jobs.c.data, jobs.c.tenant_id, jobs.c.status).where(jobs.c.id == job_id)
        row = await self._db.fetch_one(query)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            raise not_found("FineTuningJob", job_id, param="fine_tuning_job_id")
        return row

    async def _save(self, job: dict, expect: tuple[str, ...], extra=()) -> bool:
        """Writes the job if its stored status is one of `expect` (with the `extra` writes in the same
        transaction); False when it was not."""
        op = (_SAVE_IF, guarded_params(job["id"], {"status": job["status"], "data": job}, expect))
        return await self._db.write([op, *extra], guard=True)

    async def _event(self, job: dict, tenant_id: str, message: str) -> None:
        await self._db.write([self._event_insert(job, tenant_id, message)])

    def _event_insert(self, job: dict, tenant_id: str, message: str, type_: str = "message", data: dict | None = None) -> tuple:
        event = {
            "id": _step_id("ftevent-", job["id"], data["step"]) if type_ == "metrics" else new_id("ftevent-"), "object": "fine_tuning.job.event", "created_at": int(time.time()), "level": "info",
            "message": message, "data": data or {}, "type": type_,
        }
        return (_INSERT_EVENT, {"id": event["id"], "job_id": job["id"], "tenant_id": tenant_id, "created_at": event["created_at"], "data": event})

    # ---- API ----
    async def create(self, tenant_id: str, params: dict) -> dict:
        model = params.get("model")
        # A chat model of the catalogue, or one of the tenant's fine-tuned models (training continues from it).
        known = isinstance(model, str) and (self._models.fine_tunable(model) or await self._models.fine_tuned(tenant_id, model) is not None)
        if not known:
            raise invalid_request(f"Model {model} is not available for fine-tuning or does not exist.", param="model", code="model_not_available")
        suffix = params.get("suffix")
        if suffix is not None and len(suffix) > 64:
            raise invalid_request("Invalid 'suffix': string too long. Expected a string with maximum length 64.", param="suffix", code="string_above_max_length")
        for name in ("training_file", "validation_file"):
            if params.get(name):
                row = await self._files.get_row(tenant_id, params[name])
                if getattr(row, "purpose", "fine-tune") != "fine-tune":
                    raise invalid_request(f"File {params[name]} has purpose '{row.purpose}'; fine-tuning needs purpose 'fine-tune'.", param=name, code="invalid_file_purpose")
        method = dict(params.get("method") or {"type": "supervised"})
        kind = method.get("type", "supervised")
        if kind not in ("supervised", "dpo", "reinforcement"):
            raise invalid_request(f"Invalid value: '{kind}'. Supported values are: 'supervised', 'dpo' and 'reinforcement'.", param="method.type")
        section = dict(method.get(kind) or {})
        hyper = dict(section.get("hyperparameters") or params.get("hyperparameters") or {})
        for name in ("n_epochs", "batch_size", "learning_rate_multiplier"):
            hyper.setdefault(name, "auto")
        section["hyperparameters"] = hyper
        if kind == "reinforcement" and self._rewards is not None:
            if not isinstance(section.get("grader"), dict):
                raise invalid_request("Missing required parameter: 'method.reinforcement.grader'.", param="method.reinforcement.grader",
                                      code="missing_required_parameter")
            section["grader"] = self._rewards.check(section["grader"], "method.reinforcement.grader")
        method = {"type": kind, kind: section}
        now = int(time.time())
        job = {
            "id": new_id("ftjob-"), "object": "fine_tuning.job", "created_at": now, "error": None, "fine_tuned_model": None,
            "finished_at": None, "hyperparameters": {k: hyper[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
            "model": model, "organization_id": organization_id(tenant_id), "result_files": [], "seed": params.get("seed") if params.get("seed") is not None else now % 2_147_483_647,
            "status": "validating_files", "trained_tokens": None, "training_file": params["training_file"],
            "validation_file": params.get("validation_file"), "estimated_finish": None, "integrations": params.get("integrations") or [],
            "metadata": check_metadata(params.get("metadata")), "method": method, "suffix": suffix,
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(jobs).values(id=job["id"], tenant_id=tenant_id, created_at=now, status=job["status"], data=job))
        await self._event(job, tenant_id, f"Validating training file: {job['training_file']}")
        await self._queue.enqueue("train_fine_tune", key=job["id"], job_id=job["id"])
        return wire(job)

    async def get(self, tenant_id: str, job_id: str) -> dict:
        return wire((await self._row(job_id, tenant_id)).data)

    async def list(self, tenant_id: str, page: Page, metadata: dict | None = None) -> dict:
        rows, has_more = await fetch_page(self._db, jobs, page, {"tenant_id": tenant_id}, columns=(jobs.c.id, jobs.c.data))
        data = [wire(r.data) for r in rows]
        if metadata:
            data = [j for j in data if all((j.get("metadata") or {}).get(k) == v for k, v in metadata.items())]
        return list_body(data, has_more)

    async def list_events(self, tenant_id: str, job_id: str, page: Page) -> dict:
        await self._row(job_id, tenant_id)
        rows, has_more = await fetch_page(self._db, events, page, {"job_id": job_id}, columns=(events.c.id, events.c.data))
        return list_body([r.data for r in rows], has_more)

    async def list_checkpoints(self, tenant_id: str, job_id: str, page: Page) -> dict:
        await self._row(job_id, tenant_id)
        rows, has_more = await fetch_page(self._db, checkpoints, page, {"job_id": job_id}, columns=(checkpoints.c.id, checkpoints.c.data))
        return list_body([r.data for r in rows], has_more)

    async def _transition(self, tenant_id: str, job_id: str, allowed: tuple[str, ...], status: str, verb: str, message: str) -> dict:
        for _ in range(5):
            row = await self._row(job_id, tenant_id)
            job = dict(row.data)
            if job["status"] not in allowed:
                raise invalid_request(f"Cannot {verb} a job with status '{job['status']}'.", param="fine_tuning_job_id", code="invalid_job_status")
            job["status"] = status
            if status == "cancelled":
                job["finished_at"] = int(time.time())
            if await self._save(job, (row.status,), [self._event_insert(job, tenant_id, message)]):
                return wire(job)
        raise invalid_request("The job changed while this request ran; try again.", param="fine_tuning_job_id")

    async def cancel(self, tenant_id: str, job_id: str) -> dict:
        return await self._transition(tenant_id, job_id, ("validating_files", "queued", "running", "paused"), "cancelled", "cancel", "Fine-tuning job cancelled")

    async def pause(self, tenant_id: str, job_id: str) -> dict:
        return await self._transition(tenant_id, job_id, ("running",), "paused", "pause", "Fine-tuning job paused")

    async def resume(self, tenant_id: str, job_id: str) -> dict:
        return await self._transition(tenant_id, job_id, ("paused",), "running", "resume", "Fine-tuning job resumed")

    # ---- the job ----
    async def execute(self, job_id: str) -> None:
        try:
            await self._execute(job_id)
        finally:
            self._examples.pop(job_id, None)

    async def _execute(self, job_id: str) -> None:
        row = await self._row(job_id)
        tenant_id, job = row.tenant_id, dict(row.data)
        if job["status"] in TERMINAL:
            return
        kind = job["method"]["type"]
        parsed = None
        for name in ("training_file", "validation_file"):
            if not job.get(name):
                continue
            try:
                checked = training.parse(await self._files.read_all(tenant_id, job[name]), kind, minimum=training.MIN_EXAMPLES if name == "training_file" else 1)
            except (training.InvalidFile, APIError) as error:
                message = error.message if isinstance(error, APIError) else str(error)
                job.update(status="failed", finished_at=int(time.time()), error={"code": f"invalid_{name}", "message": message, "param": name})
                event = self._event_insert(job, tenant_id, f"{name.replace('_', ' ').capitalize()} validation failed: {message}")
                await self._save(job, ("validating_files", "queued", "running", "paused"), [event])
                return
            parsed = parsed or checked
        if job["status"] == "validating_files":
            job["status"] = "queued"
            if not await self._save(job, ("validating_files",)):
                return await self._execute(job_id)
            await self._event(job, tenant_id, "Files validated, moving job to queued state")
        hyper = training.resolve(job["method"][kind]["hyperparameters"], parsed.examples)
        per_epoch = training.steps_per_epoch(parsed.examples, hyper["batch_size"])
        total = per_epoch * hyper["n_epochs"]
        if job["status"] == "queued":
            job["method"][kind]["hyperparameters"] = hyper
            job["hyperparameters"] = {k: hyper[k] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}
            job["status"] = "running"
            job["estimated_finish"] = int(time.time() + total * self._settings.fine_tune_step_seconds) + 1
            if not await self._save(job, ("queued",)):
                return await self._execute(job_id)
            await self._event(job, tenant_id, "Fine-tuning job started")
        seed_text = f"{job['seed']}:{job['training_file']}:{parsed.tokens}"
        step = await self._steps_done(job_id)
        if kind == "reinforcement" and self._rewards is not None and job["method"][kind].get("grader"):
            self._examples[job_id] = self._rewards.examples(await self._files.read_all(tenant_id, job["training_file"]))
        while True:
            await self._train(job, tenant_id, step, total, per_epoch, seed_text)
            if await self._finish(job_id, tenant_id, parsed, hyper, total, seed_text):
                return
            status = await self._status(job_id)
            if status in TERMINAL:
                return
            await asyncio.sleep(0.05)  # paused after the last step: finishing waits for the resume
            step = total

    async def _train(self, job: dict, tenant_id: str, step: int, total: int, per_epoch: int, seed_text: str) -> None:
        job_id = job["id"]
        while step < total:
            # The step's time passes first: a pause or cancel that arrives meanwhile stops it being written.
            await asyncio.sleep(self._settings.fine_tune_step_seconds)
            status = await self._status(job_id)
            if status in TERMINAL:
                return
            if status != "running":
                await asyncio.sleep(0.05)
                continue
            step += 1
            m = training.metrics(seed_text, step, total, bool(job.get("validation_file")))
            message = f"Step {step}/{total}: training loss={m['train_loss']:.4f}"
            examples = self._examples.get(job_id)
            if examples:  # reinforcement: one example answered by the base model and graded, each step
                grader = job["method"]["reinforcement"]["grader"]
                score, errored = await self._rewards.reward(tenant_id, grader, job["model"], examples[(step - 1) % len(examples)])
                m.update(train_reward_mean=score, graders={grader["name"]: {"reward": score, "errored": errored}})
                message += f", reward={score:.4f}"
            writes = [self._event_insert(job, tenant_id, message, "metrics", {**m, "total_steps": total})]
            if step % per_epoch == 0:  # a checkpoint per epoch, written with its step
                writes.append(self._checkpoint_insert(job, tenant_id, step, m))
            try:
                await self._db.write(writes)
            except IntegrityError:  # another attempt wrote this step (ids are per job and step): catch up
                step = await self._steps_done(job_id)

    async def _steps_done(self, job_id: str) -> int:
        rows = await self._db.fetch_all(select(events.c.data).where(events.c.job_id == job_id))
        return sum(1 for r in rows if r.data.get("type") == "metrics")

    async def _status(self, job_id: str) -> str:
        return (await self._db.fetch_one(select(jobs.c.status).where(jobs.c.id == job_id))).status

    def _model_name(self, job: dict, step: int | None = None) -> str:
        name = f"ft:{base_model(job['model'])}:{ORG}:{job.get('suffix') or ''}:{job['id'][-8:]}"
        return name if step is None else f"{name}:ckpt-step-{step}"

    def _checkpoint_insert(self, job: dict, tenant_id: str, step: int, m: dict) -> tuple:
        ckpt = {
            "id": _step_id("ftckpt_", job["id"], step), "object": "fine_tuning.job.checkpoint", "created_at": int(time.time()),
            "fine_tuned_model_checkpoint": self._model_name(job, step), "fine_tuning_job_id": job["id"], "step_number": step,
            "metrics": {"step": float(step), "train_loss": m["train_loss"], "train_mean_token_accuracy": m["train_mean_token_accuracy"]},
        }
        if "valid_loss" in m:
            ckpt["metrics"].update(valid_loss=m["valid_loss"], valid_mean_token_accuracy=m["valid_mean_token_accuracy"],
                                   full_valid_loss=m["valid_loss"], full_valid_mean_token_accuracy=m["valid_mean_token_accuracy"])
        return (_INSERT_CHECKPOINT, {"id": ckpt["id"], "job_id": job["id"], "tenant_id": tenant_id, "created_at": ckpt["created_at"], "data": ckpt})

    async def _finish(self, job_id: str, tenant_id: str, parsed, hyper: dict, total: int, seed_text: str) -> bool:
        """True once the job has ended (succeeded here, or cancelled meanwhile); False while it is paused."""
        row = await self._row(job_id)
        job = dict(row.data)
        if job["status"] != "running":
            return job["status"] in TERMINAL
        csv = io.StringIO()
        csv.write("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n")
        for step in range(1, total + 1):
            m = training.metrics(seed_text, step, total, bool(job.get("validation_file")))
            csv.write(f"{step},{m['train_loss']},{m['train_mean_token_accuracy']},{m.get('valid_loss', '')},{m.get('valid_mean_token_accuracy', '')}\n")
        result = await self._files.create_from_bytes(tenant_id, csv.getvalue().encode(), filename="step_metrics.csv", purpose="fine-tune-results", mime_type="text/csv")
        now = int(time.time())
        name = self._model_name(job)
        job.update(status="succeeded", finished_at=now, fine_tuned_model=name, result_files=[result["id"]],
                   trained_tokens=parsed.tokens * hyper["n_epochs"], estimated_finish=None)
        model = {"id": name, "object": "model", "created": now, "owned_by": ORG, "base_model": base_model(job["model"]), "job_id": job_id, "examples": parsed.style}
        # The model row lands with the status change, or not at all (a cancel won the race).
        # ... with its closing events, so a reader who sees `succeeded` sees them too.
        closing = [
            (_INSERT_MODEL, {"id": name, "tenant_id": tenant_id, "created_at": now, "data": model}),
            self._event_insert(job, tenant_id, f"New fine-tuned model created: {name}"),
            self._event_insert(job, tenant_id, "The job has successfully completed"),
        ]
        if await self._save(job, ("running",), closing):
            return True
        await self._files.delete(tenant_id, result["id"])
        return await self._status(job_id) in TERMINAL


def wire(job: dict) -> dict:
    return {k: v for k, v in job.items() if k != "suffix"}
