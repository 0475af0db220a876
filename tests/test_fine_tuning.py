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

import httpx

from tests.conftest import new_key, start_server
from tests.support.openapi import assert_matches_schema

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
    valid = training_file(client, [example(p, r) for p, r in TOPICS[:3]])
    job = client.fine_tuning.jobs.create(
        model=BASE, training_file=train.id, validation_file=valid.id, suffix="pierre", seed=7, metadata={"team": "a"}
    )
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

    # Training continues from a fine-tuned model.
    again = wait_job(client, client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=train.id, method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}}).id)
    assert again.status == "succeeded" and again.fine_tuned_model.startswith(f"ft:{BASE}:understudy::")
    assert again.fine_tuned_model != job.fine_tuned_model

    content = client.files.content(job.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(content)))
    assert len(rows) == 30 and float(rows[-1]["valid_loss"]) > 0 and set(rows[0]) == {"step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"}

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
    assert [j.id for j in listed.data] == [again.id, job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "b"}).data] == []

    # Wire shapes against OpenAI's spec.
    headers = {"Authorization": f"Bearer {client.api_key}"}
    raw = httpx.get(f"{client.base_url}fine_tuning/jobs/{job.id}", headers=headers).json()
    assert_matches_schema(raw, "FineTuningJob")
    raw = httpx.get(f"{client.base_url}fine_tuning/jobs/{job.id}/events", headers=headers).json()
    for event in raw["data"]:
        assert_matches_schema(event, "FineTuningJobEvent")
    raw = httpx.get(f"{client.base_url}fine_tuning/jobs/{job.id}/checkpoints", headers=headers).json()
    assert_matches_schema(raw["data"][0], "FineTuningJobCheckpoint")

    # The fine-tuned model serves the Responses API and Assistants runs too.
    response = client.responses.create(model=job.fine_tuned_model, input="Which time zone is Tokyo in?")
    assert response.output_text == "Japan Standard Time, mon ami, UTC+9."
    assistant = client.beta.assistants.create(model=job.fine_tuned_model)
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "how many legs on a spider"}]}, poll_interval_ms=50
    )
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == "Eight legs, mon ami, huit!"

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
            other.models.delete(job.fine_tuned_model)
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
        client.fine_tuning.jobs.create(model="text-embedding-3-small", training_file=train.id)
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


def test_dpo_file(client):
    lines = [json.dumps({
        "input": {"messages": [{"role": "user", "content": p}]},
        "preferred_output": [{"role": "assistant", "content": r}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }) for p, r in TOPICS]
    train = training_file(client, lines)
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train.id, method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "beta": 0.2}}})
    job = wait_job(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.n_epochs == 1
    lines[4] = json.dumps({"input": {"messages": [{"role": "user", "content": "x"}]}, "preferred_output": []})
    bad = training_file(client, lines)
    job = wait_job(client, client.fine_tuning.jobs.create(model=BASE, training_file=bad.id, method={"type": "dpo"}).id)
    assert job.status == "failed" and "Line 5" in job.error.message


def test_restart_mid_training_continues_from_the_stored_step(tmp_path):
    env = {"UNDERSTUDY_FINE_TUNE_STEP_SECONDS": "0.02"}
    srv = start_server(tmp_path / "ft-restart", env)
    key = new_key()
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as sdk:
            train = training_file(sdk, [example(p, r) for p, r in TOPICS])
            job = sdk.fine_tuning.jobs.create(
                model=BASE, training_file=train.id, method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 6, "batch_size": 1}}}
            )
            wait_job(sdk, job.id, ("running",))
            time.sleep(0.3)
    finally:
        srv.stop()
    srv = start_server(tmp_path / "ft-restart", env)
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as sdk:
            job = wait_job(sdk, job.id, timeout=40)
            assert job.status == "succeeded", job.error
            events = list(sdk.fine_tuning.jobs.list_events(job.id, limit=100))  # every page
            steps = sorted(e.data["step"] for e in events if e.type == "metrics")
            assert steps == list(range(1, 61))  # every step once, across the restart
            assert len(sdk.fine_tuning.jobs.checkpoints.list(job.id, limit=100).data) == 6
    finally:
        srv.stop()
