"""Anthropic Message Batches with the official `anthropic` SDK, on the batch engine: requests with bad
params among good ones, every custom_id answered exactly once, cancel (the rest `canceled`), delete,
tenancy, a batch relayed to an Anthropic upstream that fails transiently; and, for both APIs, the
completion window running out (`expired`) and `output_expires_after`."""
from __future__ import annotations

import io
import json
import time

import anthropic
import openai
import pytest

from tests.conftest import new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env
from tests.support.openapi import assert_matches_schema

MODEL = "claude-sonnet-4-5"


def request(i: int, **params) -> dict:
    return {"custom_id": f"q-{i}", "params": {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": f"Tell me about {i}."}],
                                              **params}}


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch stuck in {batch.processing_status}"
        time.sleep(0.05)


@pytest.fixture
def ac(server):
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0, timeout=10) as client:
        yield client


def test_message_batch_end_to_end(ac, server):
    requests = [request(i) for i in range(30)]
    bad = {4, 17}
    for i in bad:
        del requests[i]["params"]["max_tokens"]  # an invalid request: errored, the others unaffected
    batch = ac.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch" and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 30 and batch.results_url is None and batch.ended_at is None
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600
    done = wait_ended(ac, batch.id)
    counts = done.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled, counts.expired) == (0, 28, 2, 0, 0)
    assert done.ended_at and done.results_url == f"{server.url}/v1/messages/batches/{batch.id}/results"
    results = list(ac.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in results) == sorted(f"q-{i}" for i in range(30))  # each exactly once
    by_id = {r.custom_id: r.result for r in results}
    ok = by_id["q-0"]
    assert ok.type == "succeeded" and ok.message.type == "message" and ok.message.role == "assistant" and ok.message.content[0].text
    for i in bad:
        errored = by_id[f"q-{i}"]
        assert errored.type == "errored" and errored.error.error.type == "invalid_request_error"
        assert "max_tokens" in errored.error.error.message
    # Listed newest first, and only Anthropic's batches there (OpenAI's list has its own).
    second = ac.messages.batches.create(requests=[request(0)])
    listed = ac.messages.batches.list(limit=1)
    assert [b.id for b in listed.data] == [second.id] and listed.has_more
    assert [b.id for b in ac.messages.batches.list(limit=5, after_id=second.id).data] == [batch.id]
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=ac.api_key, max_retries=0) as oa:
        assert oa.batches.list().data == []
        with pytest.raises(openai.BadRequestError):  # 'msgbatch_' is not an OpenAI batch id: refused before any lookup
            oa.batches.retrieve(batch.id)
    raw = ac.messages.batches.with_raw_response.retrieve(batch.id).http_response.json()
    assert_matches_schema(raw, "MessageBatch", spec="anthropic")
    lines = ac.messages.batches.with_raw_response.results(batch.id).http_response.read().decode().splitlines()
    for line in lines[:5]:
        assert_matches_schema(json.loads(line), "MessageBatchIndividualResponse", spec="anthropic")
    assert_matches_schema(ac.messages.batches.with_raw_response.list().http_response.json(), "ListResponse_MessageBatch_", spec="anthropic")
    # Cancelling an ended batch changes nothing; deleting it removes it and its results.
    assert ac.messages.batches.cancel(batch.id).processing_status == "ended"
    deleted = ac.messages.batches.delete(batch.id)
    assert deleted.id == batch.id and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        ac.messages.batches.retrieve(batch.id)
    wait_ended(ac, second.id)


def test_create_checks_the_requests(ac):
    for requests in ([], [request(0), request(0)], [{"custom_id": "has space", "params": request(1)["params"]}],
                     [{"custom_id": "x"}], [{**request(2), "extra": 1}]):
        with pytest.raises(anthropic.BadRequestError) as caught:
            ac.messages.batches.create(requests=requests)
        assert caught.value.body["type"] == "error" and caught.value.body["error"]["type"] == "invalid_request_error"
    assert ac.messages.batches.list().data == []  # nothing was created


def test_tenancy(ac, server):
    batch = ac.messages.batches.create(requests=[request(0)])
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as other:
        for call in (other.messages.batches.retrieve, other.messages.batches.cancel, other.messages.batches.delete):
            with pytest.raises(anthropic.NotFoundError):
                call(batch.id)
        assert other.messages.batches.list().data == []
    wait_ended(ac, batch.id)
    with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as other:
        with pytest.raises(anthropic.NotFoundError):
            other.get(f"/v1/messages/batches/{batch.id}/results", cast_to=object)


# ---- a slow offline model: cancel; the completion window running out ----

def test_cancel_reports_the_rest_canceled(tmp_path):
    server = start_server(tmp_path / "cancel", {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "30", "UNDERSTUDY_BATCH_CONCURRENCY": "4"})
    try:
        with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as ac:
            batch = ac.messages.batches.create(requests=[request(i) for i in range(100)])
            time.sleep(0.5)
            cancelling = ac.messages.batches.cancel(batch.id)
            assert cancelling.processing_status in ("canceling", "ended") and cancelling.cancel_initiated_at
            done = wait_ended(ac, batch.id)
            counts = done.request_counts
            assert counts.canceled > 0 and counts.succeeded + counts.canceled == 100 and counts.errored == 0
            results = list(ac.messages.batches.results(batch.id))
            assert sorted(r.custom_id for r in results) == sorted(f"q-{i}" for i in range(100))
            assert sum(r.result.type == "canceled" for r in results) == counts.canceled
    finally:
        server.stop()


def test_window_runs_out_and_output_files_expire(tmp_path):
    env = {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "30", "UNDERSTUDY_BATCH_CONCURRENCY": "2", "UNDERSTUDY_BATCH_WINDOW_SECONDS": "2"}
    server = start_server(tmp_path / "expiry", env)
    try:
        key = new_key()
        with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as ac, \
                openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as oa:
            lines = [{"custom_id": f"r-{i}", "method": "POST", "url": "/v1/responses",
                      "body": {"model": "gpt-4o-mini", "input": f"Tell a long tale about {i}.", "max_output_tokens": 32}} for i in range(200)]
            source = oa.files.create(file=("b.jsonl", io.BytesIO(b"".join(json.dumps(x).encode() + b"\n" for x in lines))), purpose="batch")
            batch = oa.batches.create(input_file_id=source.id, endpoint="/v1/responses", completion_window="24h",
                                      output_expires_after={"anchor": "created_at", "seconds": 3600})
            message_batch = ac.messages.batches.create(requests=[request(i) for i in range(200)])
            deadline = time.monotonic() + 30
            while (done := oa.batches.retrieve(batch.id)).status not in ("expired", "completed", "failed", "cancelled"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert done.status == "expired" and done.expired_at and done.completed_at is None
            counts = done.request_counts
            assert counts.total == 200 and 0 < counts.completed < 200 and counts.completed + counts.failed == 200
            errors = [json.loads(x) for x in oa.files.content(done.error_file_id).text.splitlines()]
            assert len(errors) == counts.failed and all(e["error"]["code"] == "batch_expired" and e["response"] is None for e in errors)
            output = oa.files.retrieve(done.output_file_id)
            assert output.expires_at == output.created_at + 3600
            ended = wait_ended(ac, message_batch.id)
            assert ended.request_counts.expired > 0 and ended.request_counts.succeeded + ended.request_counts.expired == 200
            kinds = [r.result.type for r in ac.messages.batches.results(message_batch.id)]
            assert len(kinds) == 200 and kinds.count("expired") == ended.request_counts.expired
    finally:
        server.stop()


# ---- an Anthropic upstream: requests relayed as they are, transient failures retried ----

def test_relayed_to_an_anthropic_upstream(tmp_path):
    with FakeUpstream(chunks=3) as fake:
        providers = [{"name": "up", "kind": "anthropic", "base_url": fake.url, "api_key": "sk-ant-up"}]
        env = upstream_env(providers, [{"model": "claude-*", "provider": "up"}], UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
        server = start_server(tmp_path / "up", env)
        try:
            with anthropic.Anthropic(base_url=server.url, api_key=new_key(), max_retries=0) as ac:
                fake.fail_next(2, 529)  # Anthropic's "overloaded": retried by the batch
                batch = ac.messages.batches.create(requests=[request(i) for i in range(6)])
                done = wait_ended(ac, batch.id)
                assert done.request_counts.succeeded == 6, done.request_counts
                results = {r.custom_id: r.result for r in ac.messages.batches.results(batch.id)}
                assert sorted(results) == [f"q-{i}" for i in range(6)]
                assert all(r.type == "succeeded" and r.message.content[0].text == fake.text() for r in results.values())
                sent = [r for r in fake.requests if r.path == "/v1/messages"]
                assert len(sent) == 8 and all(r.json()["model"] == MODEL and r.headers.get("x-api-key") == "sk-ant-up" for r in sent)
        finally:
            server.stop()
