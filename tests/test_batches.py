"""The Batch API end to end with the official SDK: chat and embeddings batches with bad lines mixed in,
validation failures naming lines, cancel, upstream errors retried then counted, tenancy, and a batch
that survives a SIGKILL of the server with every custom_id answered exactly once."""
from __future__ import annotations

import io
import json
import signal
import time

import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env
from tests.support.openapi import assert_matches_schema

MODEL = "gpt-4o-mini"


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def chat_line(i: int, url: str = "/v1/chat/completions", model: str = MODEL, **body) -> dict:
    return {"custom_id": f"req-{i}", "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": f"Say something about item {i}."}], **body}}


def response_line(i: int) -> dict:
    """Through /v1/responses: the engine streams from the model, so UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS slows each line."""
    return {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/responses",
            "body": {"model": MODEL, "input": f"Tell a tale about item {i}.", "max_output_tokens": 16, "store": False}}


def upload(client, lines: list[dict]):
    return client.files.create(file=("batch.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")


def wait_batch(client, batch_id: str, statuses=("completed", "failed", "cancelled", "expired"), timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        time.sleep(0.05)


def read_lines(client, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]


def test_chat_batch_with_bad_lines(client, http):
    lines = [chat_line(i) for i in range(100)]
    bad = {7, 33, 81}
    for i in bad:
        lines[i]["body"]["temperature"] = "hot"  # fails validation: a 400 for that line only
    source = upload(client, lines)
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "one"})
    assert batch.id.startswith("batch_") and batch.object == "batch" and batch.status == "validating"
    assert batch.expires_at == batch.created_at + 24 * 3600 and batch.metadata == {"run": "one"} and batch.errors is None
    done = wait_batch(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts.total == 100 and done.request_counts.completed == 97 and done.request_counts.failed == 3
    assert done.in_progress_at and done.finalizing_at and done.completed_at and done.usage.total_tokens > 0
    output, errors = read_lines(client, done.output_file_id), read_lines(client, done.error_file_id)
    ids = [line["custom_id"] for line in output + errors]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(100)) and len(set(ids)) == 100
    assert [line["custom_id"] for line in output] == [f"req-{i}" for i in range(100) if i not in bad]  # input order
    first = output[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None and first["response"]["status_code"] == 200
    assert first["response"]["body"]["object"] == "chat.completion" and first["response"]["request_id"].startswith("req_")
    assert {e["custom_id"] for e in errors} == {f"req-{i}" for i in bad}
    for error in errors:
        assert error["response"]["status_code"] == 400 and error["response"]["body"]["error"]["param"] == "temperature"
    meta = client.files.retrieve(done.output_file_id)
    assert meta.purpose == "batch_output" and meta.filename == f"{batch.id}_output.jsonl"
    listed = client.batches.list(limit=10)
    assert listed.data[0].id == batch.id
    assert_matches_schema(http.get(f"/batches/{batch.id}").json(), "Batch")
    assert_matches_schema(http.get("/batches").json(), "ListBatchesResponse")
    assert_openai_error(http.get("/batches", params={"limit": 0}), 400, param="limit")


def test_embeddings_batch(client):
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": f"text {i}"}}
             for i in range(20)]
    batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/embeddings", completion_window="24h")
    done = wait_batch(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 20 and done.error_file_id is None
    output = read_lines(client, done.output_file_id)
    assert [o["custom_id"] for o in output] == [f"e{i}" for i in range(20)]
    assert output[0]["response"]["body"]["data"][0]["embedding"]
    with pytest.raises(openai.ConflictError):  # as OpenAI: a finished batch cannot be cancelled
        client.batches.cancel(batch.id)


@pytest.mark.parametrize("endpoint, body", [
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time", "max_tokens": 8}),
    ("/v1/moderations", {"model": "omni-moderation-latest", "input": "a kind word"}),
    ("/v1/responses", {"model": MODEL, "input": "Hello there", "max_output_tokens": 16}),
])
def test_other_endpoints(client, endpoint, body):
    lines = [{"custom_id": f"x{i}", "method": "POST", "url": endpoint, "body": body} for i in range(3)]
    batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint=endpoint, completion_window="24h")
    done = wait_batch(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    output = read_lines(client, done.output_file_id)
    assert [o["custom_id"] for o in output] == ["x0", "x1", "x2"] and all(o["response"]["status_code"] == 200 for o in output)


def test_invalid_files_fail_naming_lines(client):
    lines = [chat_line(i) for i in range(10)]
    lines[4]["custom_id"] = "req-1"  # duplicate
    lines[6] = chat_line(6, url="/v1/embeddings")  # url mismatch
    batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = wait_batch(client, batch.id)
    assert failed.status == "failed" and failed.failed_at and failed.output_file_id is None
    by_line = {e.line: e.code for e in failed.errors.data}
    assert by_line == {5: "duplicate_custom_id", 7: "invalid_url"}


def test_create_rejects_bad_requests(client):
    good = upload(client, [chat_line(0)])
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=good.id, endpoint="/v1/nope", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=good.id, endpoint="/v1/chat/completions", completion_window="48h")  # type: ignore[arg-type]
    other = client.files.create(file=("x.jsonl", io.BytesIO(jsonl([chat_line(0)]))), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=other.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h")


def test_tenancy(client, server):
    batch = client.batches.create(input_file_id=upload(client, [chat_line(0)]).id, endpoint="/v1/chat/completions", completion_window="24h")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.batches.retrieve(batch.id)
        with pytest.raises(openai.NotFoundError):
            other.batches.cancel(batch.id)
        assert other.batches.list().data == []
    wait_batch(client, batch.id)


# ---- a slow offline model: cancel, restart ----

SLOW_ENV = {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "30"}


@pytest.fixture(scope="module")
def slow_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slow-batches")


def sdk(server, key):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_cancel_keeps_what_finished(slow_dir):
    server = start_server(slow_dir / "cancel", SLOW_ENV)
    try:
        with sdk(server, new_key()) as client:
            lines = [response_line(i) for i in range(200)]
            batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/responses", completion_window="24h")
            deadline = time.monotonic() + 20
            while client.batches.retrieve(batch.id).request_counts.completed < 1:  # some lines finished, most not
                assert time.monotonic() < deadline
                time.sleep(0.02)
            cancelling = client.batches.cancel(batch.id)
            assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
            done = wait_batch(client, batch.id)
            assert done.status == "cancelled" and done.cancelled_at and done.completed_at is None
            output = read_lines(client, done.output_file_id)
            assert 0 < len(output) < 200 and done.request_counts.completed == len(output)
            assert len({o["custom_id"] for o in output}) == len(output)
    finally:
        server.stop()


def test_batch_survives_a_server_kill(slow_dir):
    data_dir = slow_dir / "restart"
    server = start_server(data_dir, SLOW_ENV)
    key = new_key()
    try:
        with sdk(server, key) as client:
            lines = [response_line(i) for i in range(80)]
            batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/responses", completion_window="24h")
            deadline = time.monotonic() + 20
            while client.batches.retrieve(batch.id).request_counts.completed < 20:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert client.batches.retrieve(batch.id).status == "in_progress"  # killed mid-batch
        server.stop(signal.SIGKILL)
        server = start_server(data_dir, SLOW_ENV)
        with sdk(server, key) as client:
            done = wait_batch(client, batch.id, timeout=60)
            assert done.status == "completed" and done.request_counts.completed == 80
            output = read_lines(client, done.output_file_id)
            assert [o["custom_id"] for o in output] == [f"req-{i}" for i in range(80)]
    finally:
        server.stop()


# ---- an upstream that fails ----

def test_upstream_errors_retried_then_counted(tmp_path):
    with FakeUpstream(chunks=3) as fake:
        providers = [{"name": "up", "kind": "openai", "base_url": fake.openai_url, "api_key": "sk-up"}]
        env = upstream_env(providers, [{"model": "gpt-*", "provider": "up"}], UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
        server = start_server(tmp_path / "up", env)
        try:
            with sdk(server, new_key()) as client:
                # Transient: two 503s, retried by the batch and answered.
                fake.fail_next(2, 503)
                batch = client.batches.create(input_file_id=upload(client, [chat_line(i) for i in range(5)]).id,
                                              endpoint="/v1/chat/completions", completion_window="24h")
                done = wait_batch(client, batch.id)
                assert done.status == "completed" and done.request_counts.completed == 5 and done.request_counts.failed == 0
                # Persistent: more failures than retries, for one line only (a single line).
                fake.fail_next(10, 500)
                batch = client.batches.create(input_file_id=upload(client, [chat_line(0)]).id,
                                              endpoint="/v1/chat/completions", completion_window="24h")
                done = wait_batch(client, batch.id)
                assert done.status == "completed" and done.request_counts.failed == 1 and done.output_file_id is None
                error = read_lines(client, done.error_file_id)[0]
                assert error["custom_id"] == "req-0" and error["response"]["status_code"] >= 500
                fake.reset()
        finally:
            server.stop()
