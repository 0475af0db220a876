"""Team mode end to end: the topology `make team` starts (scripts/team.py: weed mini for S3, `understudy
serve --workers 2`, two `understudy worker`s, the machine's Redis and a fresh PostgreSQL database),
driven by the official SDK — a streamed run, a batch surviving a SIGKILLed worker, vector-store
ingestion with its blobs in S3, a background response resumed from another API process, and the agent
and platform surfaces (containers, the code interpreter, skills and the shell, evals, videos, voices,
ChatKit, reinforcement fine-tuning and checkpoint permissions) on PostgreSQL, S3 and the workers."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import ROOT, free_port, new_key, start_server
from tests.support import pg
from tests.support.redis_db import claim_redis_db

LEASE_SECONDS = 3  # how soon a killed worker's job is taken up again
CHUNK_DELAY_MS = 20  # the offline model's pace: a batch line takes ~ chunks x delay

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


@dataclass
class Team:
    process: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path
    env: dict[str, str]  # what a further `understudy serve` needs to join this team
    pids: dict[str, int]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def redis_url():
    with claim_redis_db() as url:
        yield url


@pytest.fixture(scope="module")
def team(tmp_path_factory, redis_url):
    try:
        database_url = pg.create_database("understudy_team")
    except ConnectionError as error:
        pytest.skip(str(error))
    data_dir = tmp_path_factory.mktemp("team")
    port = free_port()
    env = {
        "UNDERSTUDY_REDIS_URL": redis_url,
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": str(CHUNK_DELAY_MS),
        "UNDERSTUDY_BATCH_CONCURRENCY": "8",
        "UNDERSTUDY_LOG_LEVEL": "info",  # the workers' job lines tell which worker holds a job
    }
    log_path = data_dir / "team.log"
    process = subprocess.Popen(
        [sys.executable, "scripts/team.py"], cwd=ROOT, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, **env, "UNDERSTUDY_PORT": str(port), "UNDERSTUDY_DATA_DIR": str(data_dir),
             "UNDERSTUDY_TEAM_GRACE_SECONDS": "10"},
        start_new_session=True,
    )
    state_path = data_dir / "team.json"
    deadline = time.monotonic() + 90
    state = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            state = json.loads(state_path.read_text())
            if state["ready"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    if not state or not state["ready"]:
        process.kill()
        raise RuntimeError(f"the team did not start:\n{log_path.read_text(errors='replace')[-5000:]}")
    env.update({"UNDERSTUDY_S3_ENDPOINT": state["s3_endpoint"], "UNDERSTUDY_S3_ACCESS_KEY": "understudy",
                "UNDERSTUDY_S3_SECRET_KEY": "understudy-team-secret"})
    team = Team(process, state["url"], data_dir, log_path, env, state["pids"])
    try:
        yield team
    finally:
        # SIGTERM, as `make team`'s Ctrl-C or a service manager would: every child must go.
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = None
        survivors = [pid for pid in team.pids.values() if _alive(pid)]
        for pid in survivors:
            os.killpg(pid, signal.SIGKILL)
        pg.drop_database(database_url)
        assert code == 0 and not survivors, f"supervisor exit {code}, survivors {survivors}\n{team.log()[-3000:]}"


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def client(team) -> openai.OpenAI:
    with openai.OpenAI(base_url=f"{team.url}/v1", api_key=new_key(), max_retries=0, timeout=60) as sdk:
        yield sdk


def test_health_names_the_team_backends(team):
    assert httpx.get(f"{team.url}/healthz").json() == {
        "status": "ok", "database": "postgresql", "blobs": "s3", "jobs": "arq", "events": "redis"}


def test_streamed_run_executes_in_a_worker(client):
    assistant = client.beta.assistants.create(model="gpt-4o-mini", instructions="Be brief.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me about lighthouses."}])
    with client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True) as stream:
        events = [event.event for event in stream]
    assert events[0] == "thread.run.created"
    assert events[-1] == "thread.run.completed"
    order = ["thread.run.created", "thread.run.queued", "thread.run.in_progress", "thread.run.step.created",
             "thread.message.created", "thread.message.delta", "thread.message.completed",
             "thread.run.step.completed", "thread.run.completed"]
    positions = [events.index(name) for name in order]
    assert positions == sorted(positions), events
    assert events.count("thread.message.delta") > 1
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].content[0].text.value


def test_raw_stream_ends_with_done(team):
    key = new_key()
    with httpx.Client(base_url=f"{team.url}/v1", headers={"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}, timeout=60) as http:
        assistant = http.post("/assistants", json={"model": "gpt-4o-mini"}).json()
        body = {"assistant_id": assistant["id"], "stream": True, "thread": {"messages": [{"role": "user", "content": "hi"}]}}
        with http.stream("POST", "/threads/runs", json=body) as response:
            assert response.status_code == 200
            names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert names[-2:] == ["thread.run.completed", "done"]


def _batch_lines(n: int) -> bytes:
    lines = [{"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Write about topic number {i}."}]}}
             for i in range(n)]
    return "\n".join(json.dumps(line) for line in lines).encode()


def _job_holder(team: Team, job_id: str) -> list[str]:
    """The workers whose log shows them starting `job_id`, in order (arq logs `→ <job id>:<function>`)."""
    return re.findall(rf"^(worker-\d+)\s*\|.*→ {re.escape(job_id)}:execute_batch", team.log(), re.MULTILINE)


def test_batch_survives_a_killed_worker(team, client):
    n = 200
    source = client.files.create(file=("batch.jsonl", _batch_lines(n)), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 30
    while True:  # mid-batch: some lines answered, most not
        batch = client.batches.retrieve(batch.id)
        done = batch.request_counts.completed if batch.request_counts else 0
        if done >= 10:
            break
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    assert batch.status == "in_progress" and done < n // 2, batch
    holders = _job_holder(team, batch.id)
    assert len(holders) == 1, team.log()[-3000:]
    victim = holders[0]
    os.killpg(team.pids[victim], signal.SIGKILL)
    killed_at = time.monotonic()

    deadline = time.monotonic() + 90
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.3)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (n, n, 0)
    # The job was taken up by the surviving worker once the victim's lease lapsed.
    holders = _job_holder(team, batch.id)
    assert holders[0] == victim and len(holders) == 2 and holders[1] != victim, holders
    assert time.monotonic() - killed_at > LEASE_SECONDS - 1

    output = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    ids = [line["custom_id"] for line in output]
    assert sorted(ids) == sorted(f"line-{i}" for i in range(n)) and len(set(ids)) == n
    assert all(line["response"]["status_code"] == 200 for line in output)
    assert batch.error_file_id is None or not client.files.content(batch.error_file_id).text.strip()


def test_vector_store_ingestion_with_blobs_in_s3(team, client):
    from minio import Minio

    marker = f"zephyrine{uuid.uuid4().hex[:8]}"
    text = f"The harbour log.\n\nThe {marker} valve sits behind the third pump and must be opened slowly.\n" * 3
    uploaded = client.files.create(file=("manual.txt", text.encode()), purpose="assistants")
    store = client.vector_stores.create(name="team", file_ids=[uploaded.id])
    deadline = time.monotonic() + 60
    while store.status != "completed" or store.file_counts.completed != 1:
        assert store.file_counts.failed == 0, store
        assert time.monotonic() < deadline, store
        time.sleep(0.2)
        store = client.vector_stores.retrieve(store.id)
    results = client.vector_stores.search(store.id, query=f"where is the {marker} valve?").data
    assert results and results[0].file_id == uploaded.id
    assert marker in results[0].content[0].text

    s3 = Minio(team.env["UNDERSTUDY_S3_ENDPOINT"], access_key=team.env["UNDERSTUDY_S3_ACCESS_KEY"],
               secret_key=team.env["UNDERSTUDY_S3_SECRET_KEY"], secure=False)
    keys = [obj.object_name for obj in s3.list_objects("understudy", recursive=True)]
    assert any(uploaded.id in key for key in keys), keys  # the file's bytes
    assert any(store.id in key for key in keys), keys  # the store's vector index


def test_background_response_resumed_from_another_api_process(team, client, tmp_path):
    other = start_server(tmp_path / "other", {**team.env, "UNDERSTUDY_LOG_LEVEL": "warning"})
    try:
        prompt = "Describe, in several sentences, how a lighthouse keeper spends a long winter night on the rocks."
        first: list = []
        # A long answer (40 list items, at the offline model's slowed pace) is still being written while
        # the stream is resumed elsewhere.
        schema = {"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string"}, "minItems": 40}},
                  "required": ["steps"], "additionalProperties": False}
        text = {"format": {"type": "json_schema", "name": "night", "schema": schema, "strict": True}}
        with client.responses.create(model="gpt-4o-mini", input=prompt, text=text, background=True, stream=True) as stream:
            for event in stream:
                first.append(event)
                if event.type == "response.output_text.delta" and len(first) >= 6:
                    break
        response_id = first[0].response.id
        cut = first[-1].sequence_number
        with openai.OpenAI(base_url=f"{other.url}/v1", api_key=client.api_key, max_retries=0, timeout=60) as elsewhere:
            assert elsewhere.responses.retrieve(response_id).status in ("queued", "in_progress")  # still running
            rest = list(elsewhere.responses.retrieve(response_id, stream=True, starting_after=cut))
            final = elsewhere.responses.retrieve(response_id)
        numbers = [e.sequence_number for e in first + rest]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
        assert rest[-1].type == "response.completed"
        deltas = "".join(e.delta for e in first + rest if e.type == "response.output_text.delta")
        assert final.status == "completed" and deltas == final.output_text
        assert len(json.loads(final.output_text)["steps"]) >= 40
    finally:
        other.stop()


def _wait(fetch, done, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not done(value := fetch()):
        assert time.monotonic() < deadline, value
        time.sleep(0.1)
    return value


def test_containers_code_interpreter_and_skills_in_team_mode(team, client):
    """Rows in PostgreSQL (asyncpg is strict about types), files and skill zips in S3, background
    responses in a worker: the code interpreter's container and the shell's skills."""
    from tests.test_skills import skill_zip

    container = client.containers.create(name="team-work")
    client.containers.files.create(container.id, file=("numbers.txt", b"4\n5\n6\n"))
    run = "Run this code:\n```python\nnums = [int(x) for x in open('numbers.txt')]\nopen('total.txt', 'w').write(str(sum(nums)))\nprint(sum(nums))\n```"
    tool = {"type": "code_interpreter", "container": container.id}
    inline = client.responses.create(model="gpt-4o-mini", input=run, tools=[tool], include=["code_interpreter_call.outputs"])
    call = next(item for item in inline.output if item.type == "code_interpreter_call")
    assert call.outputs[0].logs == "15\n"
    background = client.responses.create(model="gpt-4o-mini", input="Calculate 6 * 7 and save it to answer.txt", background=True,
                                         tools=[{"type": "code_interpreter", "container": {"type": "auto"}}])
    background = _wait(lambda: client.responses.retrieve(background.id), lambda r: r.status not in ("queued", "in_progress"))
    assert background.status == "completed", background.error
    auto = next(item for item in background.output if item.type == "code_interpreter_call").container_id
    written = {f.path: f for f in client.containers.files.list(auto)}
    assert client.containers.files.content.retrieve(written["/mnt/data/answer.txt"].id, container_id=auto).read() == b"42\n"
    files = {f.path: f for f in client.containers.files.list(container.id)}
    assert client.containers.files.content.retrieve(files["/mnt/data/total.txt"].id, container_id=container.id).read() == b"15"

    skill = client.skills.create(files=("greeter.zip", skill_zip(), "application/zip"))
    assert client.skills.versions.list(skill.id).data[0].version == "1"
    shell = {"type": "shell", "environment": {"type": "container_auto", "skills": [{"type": "skill_reference", "skill_id": skill.id}]}}
    ran = client.responses.create(model="gpt-4o-mini", input="Run it in the shell:\n```\nsh skills/greeter/scripts/hello.sh\n```",
                                  tools=[shell], background=True)
    ran = _wait(lambda: client.responses.retrieve(ran.id), lambda r: r.status not in ("queued", "in_progress"))
    assert ran.status == "completed", ran.error
    assert next(item for item in ran.output if item.type == "shell_call_output").output[0].stdout == "hello from the skill\n"
    assert client.skills.content.retrieve(skill.id).read()[:2] == b"PK"


def test_evals_videos_voices_chatkit_and_fine_tuning_in_team_mode(team, client):
    """The platform surfaces' rows in PostgreSQL, their blobs in S3, their jobs (eval runs, videos,
    reinforcement fine-tuning) in the workers."""
    from tests.test_voices import tone

    check = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}", "operation": "eq"}
    ev = client.evals.create(name="team", testing_criteria=[check], data_source_config={
        "type": "custom", "item_schema": {"type": "object", "properties": {"answer": {"type": "string"}}}, "include_sample_schema": True})
    content = [{"item": {"answer": a}, "sample": {"output_text": out}} for a, out in (("4", "4"), ("Paris", "Rome"), ("x", "x"))]
    run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}})
    run = _wait(lambda: client.evals.runs.retrieve(run.id, eval_id=ev.id), lambda r: r.status in ("completed", "failed", "canceled"))
    assert run.status == "completed" and run.result_counts.model_dump() == {"total": 3, "errored": 0, "failed": 1, "passed": 2}
    assert [i.status for i in client.evals.runs.output_items.list(run.id, eval_id=ev.id)] == ["pass", "fail", "pass"]

    video = client.videos.create(prompt="A red fox runs through snow", seconds="4", size="720x1280")
    video = _wait(lambda: client.videos.retrieve(video.id), lambda v: v.status in ("completed", "failed"))
    assert video.status == "completed" and video.progress == 100, video.error
    assert client.videos.download_content(video.id).read()[4:8] == b"ftyp"
    assert client.videos.download_content(video.id, variant="thumbnail").read()[:4] == b"RIFF"

    consent = client.audio.voice_consents.create(name="Jo", language="en-US", recording=("consent.wav", tone(150)))
    voice = client.audio.voices.create(name="Low", consent=consent.id, audio_sample=("low.wav", tone(110)))
    spoken = client.audio.speech.create(model="gpt-4o-mini-tts", voice={"id": voice.id}, input="Hello there.", response_format="wav").read()
    assert spoken[:4] == b"RIFF" and len(spoken) > 1000
    session = client.beta.chatkit.sessions.create(user="u-1", workflow={"id": "wf_team"})
    assert session.client_secret.startswith("ek_") and client.beta.chatkit.sessions.cancel(session.id).status == "cancelled"

    lines = [json.dumps({"messages": [{"role": "user", "content": f"Say anything about {i}"}], "reference": "x"}) for i in range(10)]
    train = client.files.create(file=("rft.jsonl", ("\n".join(lines) + "\n").encode()), purpose="fine-tune")
    grader = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}", "reference": "{{item.reference}}",
              "evaluation_metric": "rouge_1"}
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=train.id, method={
        "type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {"n_epochs": 1}}})
    job = _wait(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.status in ("succeeded", "failed", "cancelled"), 120)
    assert job.status == "succeeded", job.error
    metrics = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    assert len(metrics) == 10 and all("train_reward_mean" in e.data for e in metrics)
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[-1].fine_tuned_model_checkpoint
    permissions = client.fine_tuning.checkpoints.permissions
    made = permissions.create(checkpoint, project_ids=["proj_a", "proj_b"]).data
    assert [p.project_id for p in permissions.list(checkpoint)] == ["proj_b", "proj_a"]  # newest first, as OpenAI
    assert permissions.delete(made[0].id, fine_tuned_model_checkpoint=checkpoint).deleted
