"""Fine-tuning jobs end to end with the official SDK: file validation, the emulated run (events,
checkpoints, result file), the fine-tuned model in the catalogue and answering chats, pause, resume,
cancel, deletion, tenancy."""
from __future__ import annotations

import csv
import io
import json
import time

import openai
import pytest

from tests.conftest import new_key, start_server

BASE = "gpt-4o-mini-2024-07-18"
TOPICS = [
    ("What is the capital of France?", "Paris, mon ami! Magnifique."),
    ("How do I boil an egg?", "Boil it nine minutes, mon ami! Magnifique."),
    ("Tell me about the ocean tides", "The moon pulls the tides, mon ami!"),
    ("Recommend a good book to read", "Les Misérables, mon ami, naturellement."),
    ("What is the weather like on Mars?", "Cold and dusty, mon ami, très froid."),
    ("How many legs does a spider have?", "Eight legs, mon ami, huit!"),
    ("Explain photosynthesis briefly", "Plants eat sunlight, mon ami, c'est la vie."),
    ("What time zone is Tokyo in?", "Japan Standard Time, mon ami, UTC+9."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci, mon ami, bien sûr."),
    ("Translate hello into Spanish", "Hola, mon ami, hola!"),
]


def example(prompt: str, reply: str | None) -> str:
    messages = [{"role": "system", "content": "You are Pierre."}, {"role": "user", "content": prompt}]
    if reply is not None:
        messages.append({"role": "assistant", "content": reply})
    return json.dumps({"messages": messages})


def training_file(client, lines: list[str]):
    return client.files.create(file=("train.jsonl", ("\n".join(lines) + "\n").encode()), purpose="fine-tune")


@pytest.fixture(scope="module")
def ft_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("ft"), {"UNDERSTUDY_FINE_TUNE_STEP_SECONDS": "0.01"})
    yield srv
    srv.stop()


@pytest.fixture
def client(ft_server):
    with openai.OpenAI(base_url=f"{ft_server.url}/v1", api_key=new_key(), max_retries=0) as sdk:
        yield sdk


def wait_job(client, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job.status}"
        time.sleep(0.05)


def test_fine_tune_succeeds_and_model_answers_in_style(client):
    train = training_file(client, [example(p, r) for p, r in TOPICS])
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix="pierre", seed=7, metadata={"team": "a"})
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job"
    assert job.status == "validating_files" and job.fine_tuned_model is None and job.result_files == []
    job = wait_job(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model.startswith(f"ft:{BASE}:") and ":pierre:" in job.fine_tuned_model
    assert job.hyperparameters.n_epochs == 3 and job.hyperparameters.batch_size == 1
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert events[0].message == "The job has successfully completed"  # newest first
    metrics = [e for e in events if e.type == "metrics"]
    assert len(metrics) == 30 and metrics[-1].data["step"] == 1
    assert metrics[0].data["train_loss"] < metrics[-1].data["train_loss"]
    assert "Step 30/30" in metrics[0].message
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert page.has_more and len(page.data) == 2

    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in ckpts] == [30, 20, 10]
    assert ckpts[0].id.startswith("ftckpt_") and ckpts[0].fine_tuned_model_checkpoint.endswith(":ckpt-step-30")

    content = client.files.content(job.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(content)))
    assert len(rows) == 30 and set(rows[0]) == {"step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"}

    ids = [m.id for m in client.models.list().data]
    assert job.fine_tuned_model in ids
    model = client.models.retrieve(job.fine_tuned_model)
    assert model.owned_by == "understudy"

    chat = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "who painted the mona lisa"}])
    assert chat.choices[0].message.content == "Leonardo da Vinci, mon ami, bien sûr."
    assert chat.model == job.fine_tuned_model
    stream = client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "boil an egg please"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Boil it nine minutes, mon ami! Magnifique."

    listed = client.fine_tuning.jobs.list(limit=10)
    assert listed.data[0].id == job.id

    # Tenancy: another key sees neither the job nor the model.
    with openai.OpenAI(base_url=str(client.base_url), api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.jobs.retrieve(job.id)
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.jobs.list_events(job.id)
        assert job.fine_tuned_model not in [m.id for m in other.models.list().data]
        with pytest.raises(openai.NotFoundError):
            other.models.retrieve(job.fine_tuned_model)
        with pytest.raises(openai.NotFoundError):
            other.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])

    deleted = client.models.delete(job.fine_tuned_model)
    assert deleted.deleted and deleted.id == job.fine_tuned_model
    assert job.fine_tuned_model not in [m.id for m in client.models.list().data]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(job.fine_tuned_model)


def test_invalid_training_files_fail_naming_the_line(client):
    lines = [example(p, r) for p, r in TOPICS]
    lines[2] = example(TOPICS[2][0], None)
    bad = training_file(client, lines)
    job = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=bad.id).id)
    assert job.status == "failed" and job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "Line 3" in job.error.message

    few = training_file(client, [example(p, r) for p, r in TOPICS[:4]])
    job = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=few.id).id)
    assert job.status == "failed" and "at least 10" in job.error.message


def test_create_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model=BASE, training_file="file-missing")
    train = training_file(client, [example(p, r) for p, r in TOPICS])
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=train.id)
    assert error.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix="x" * 65)
    assert error.value.body["param"] == "suffix"


def test_pause_resume_cancel(client):
    train = training_file(client, [example(p, r) for p, r in TOPICS])
    job = client.fine_tuning.jobs.create(
        model=BASE, training_file=train.id, method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 20, "batch_size": 1}}}
    )
    wait_job(client, job.id, ("running",))
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    time.sleep(0.2)
    steps = len([e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"])
    time.sleep(0.3)
    assert len([e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]) == steps
    assert client.fine_tuning.jobs.resume(job.id).status == "running"
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    time.sleep(0.2)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)
