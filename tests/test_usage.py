"""Usage records per project and model, read at /v1/organization/usage/completions (and /embeddings) in
OpenAI's shape: the sums equal the `usage` the responses reported."""
from __future__ import annotations

import io
import json
import time
from collections import Counter, defaultdict

import httpx
import openai
import pytest

from app.services.usage import UsageRecorder, in_batch
from storage.db import Database
from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import upstream_env
from tests.support.openapi import assert_matches_schema
from tests.test_db import anyio_backend, db_url, pg_databases  # noqa: F401  (fixtures: SQLite and PostgreSQL databases)

ADMIN_KEY = "sk-admin-usage-" + "0" * 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("usage"), {"UNDERSTUDY_ADMIN_KEY": ADMIN_KEY})
    yield srv
    srv.stop()


@pytest.fixture
def admin(server):
    with httpx.Client(base_url=f"{server.url}/v1/organization", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as c:
        yield c


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def _report(admin: httpx.Client, path: str, **params) -> dict:
    response = admin.get(path, params={"start_time": int(time.time()) - 3600, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_matches_schema(body, "UsageResponse")
    return body


def _poll(admin: httpx.Client, path: str, projects: set[str] | None, ready, **params) -> dict:
    """Usage is written asynchronously (about once a second): read until `ready(body)`, for at most 15 s."""
    deadline = time.monotonic() + 15
    while True:
        body = _report(admin, path, **params)
        if ready(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.25)


def _results(body: dict, projects: set[str] | None = None) -> list[dict]:
    return [r for b in body["data"] for r in b["results"] if projects is None or r["project_id"] in projects]


def test_usage_sums_equal_the_responses_usage_per_project_and_model(server, admin):
    keys = [new_key(), new_key()]
    expected: dict[tuple[int, str], Counter] = defaultdict(Counter)  # (key index, model) -> sums
    embedded: dict[int, Counter] = defaultdict(Counter)
    for index, key in enumerate(keys):
        client = sdk(server, key)
        for model in ("gpt-4o-mini", "gpt-4o"):
            completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello " * (index + 1) + model}])
            _add(expected[index, completion.model], completion.usage.prompt_tokens, completion.usage.completion_tokens)
        # A stream whose client did not ask for usage: recorded all the same, and the client sees none.
        with client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}], stream=True) as stream:
            chunks = list(stream)
        assert all(chunk.usage is None for chunk in chunks) and all(chunk.choices for chunk in chunks)
        counted = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream please"}],
                                                 stream=True, stream_options={"include_usage": True})
        usage = [chunk.usage for chunk in counted if chunk.usage is not None][-1]
        # The offline model is deterministic: both streams (the same request) used what the second reports.
        _add(expected[index, chunks[0].model], 2 * usage.prompt_tokens, 2 * usage.completion_tokens, requests=2)
        response = client.responses.create(model="gpt-4o", input="a response, please")
        _add(expected[index, response.model], response.usage.input_tokens, response.usage.output_tokens)
        embedding = client.embeddings.create(model="text-embedding-3-small", input=["one", "two words"])
        embedded[index]["input_tokens"] += embedding.usage.prompt_tokens
        embedded[index]["num_model_requests"] += 1

    requests = sum(c["num_model_requests"] for c in expected.values())
    by_project = _poll(admin, "/usage/completions", None, lambda body: _requests(body, None) >= requests, group_by=["project_id", "model"])
    # Each key is its own project (open mode): ours are the ones whose sums per model are exactly these.
    sums = {(r["project_id"], r["model"]): r for r in _results(by_project)}
    found = {}
    for index in range(2):
        mine = {m: counts for (i, m), counts in expected.items() if i == index}
        matching = [p for p in {p for (p, _m) in sums} if all((p, m) in sums and _matches(sums[p, m], c) for m, c in mine.items())]
        assert len(matching) == 1, (index, mine, sums)
        found[index] = matching[0]
        for model in mine:
            assert sums[found[index], model]["api_key_id"] is None and sums[found[index], model]["batch"] is None
    assert found[0] != found[1]

    # Filtered to one project and grouped by model only; then ungrouped (one total per bucket).
    one = _report(admin, "/usage/completions", project_ids=[found[0]], group_by="model")
    assert {r["model"] for r in _results(one)} == {m for (i, m) in expected if i == 0}
    assert all(r["project_id"] is None for r in _results(one))
    total = _report(admin, "/usage/completions", project_ids=[found[0], found[1]])
    assert len(_results(total)) == 1
    assert _results(total)[0]["input_tokens"] == sum(c["input_tokens"] for c in expected.values())
    assert _results(total)[0]["output_tokens"] == sum(c["output_tokens"] for c in expected.values())
    mini = next(m for (i, m) in expected if m.startswith("gpt-4o-mini"))
    only_mini = _report(admin, "/usage/completions", project_ids=found[1], models=mini, group_by="model")
    assert [r["model"] for r in _results(only_mini)] == [mini]
    assert _matches(_results(only_mini)[0], expected[1, mini])

    # Embeddings are their own usage (OpenAI's /usage/embeddings), not completions.
    embeddings = _poll(admin, "/usage/embeddings", None, lambda body: True, project_ids=[found[0], found[1]], group_by="project_id")
    by = {r["project_id"]: r for r in _results(embeddings)}
    for index in range(2):
        assert by[found[index]]["object"] == "organization.usage.embeddings.result"
        assert by[found[index]]["input_tokens"] == embedded[index]["input_tokens"]
        assert by[found[index]]["num_model_requests"] == 1


def _add(counter: Counter, input_tokens: int, output_tokens: int, requests: int = 1) -> None:
    counter["input_tokens"] += input_tokens
    counter["output_tokens"] += output_tokens
    counter["num_model_requests"] += requests


def _matches(result: dict, counts: Counter) -> bool:
    return all(result[name] == counts[name] for name in ("input_tokens", "output_tokens", "num_model_requests"))


def _requests(body: dict, projects) -> int:
    return sum(r["num_model_requests"] for r in _results(body, projects))


def test_buckets_pages_and_parameters(server, admin):
    client = sdk(server, new_key())
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "bucket me"}])
    now = int(time.time())
    body = _poll(admin, "/usage/completions", None, lambda b: _requests(b, None) > 0, bucket_width="1m", start_time=now - 4 * 60, end_time=now + 1, limit=3)
    assert len(body["data"]) == 3 and body["has_more"] is True and body["next_page"]
    for bucket in body["data"]:
        assert bucket["object"] == "bucket" and bucket["end_time"] - bucket["start_time"] == 60
    rest = _report(admin, "/usage/completions", bucket_width="1m", start_time=now - 4 * 60, end_time=now + 1, limit=3,
                   page=body["next_page"])
    assert rest["data"][0]["start_time"] == body["data"][-1]["end_time"] and len(rest["data"]) == 2  # five minutes in all
    assert rest["has_more"] is False and rest["next_page"] is None
    assert _requests(rest, None) >= 1  # this minute's request is in the last page
    hourly = _report(admin, "/usage/completions", bucket_width="1h")
    assert all(b["end_time"] - b["start_time"] == 3600 for b in hourly["data"])
    daily = _report(admin, "/usage/completions", start_time=now - now % 86400)  # from today's start (UTC): one day
    assert len(daily["data"]) == 1 and daily["data"][0]["end_time"] - daily["data"][0]["start_time"] == 86400

    assert_openai_error(admin.get("/usage/completions"), 400, param="start_time")
    assert_openai_error(admin.get("/usage/completions", params={"start_time": now, "bucket_width": "2h"}), 400, param="bucket_width")
    assert_openai_error(admin.get("/usage/completions", params={"start_time": now, "bucket_width": "1d", "limit": 32}), 400, param="limit")
    assert_openai_error(admin.get("/usage/completions", params={"start_time": now, "group_by": "colour"}), 400, param="group_by")


def test_usage_needs_the_admin_key(server):
    for headers in ({}, {"Authorization": f"Bearer {new_key()}"}):
        response = httpx.get(f"{server.url}/v1/organization/usage/completions", params={"start_time": 0}, headers=headers)
        assert_openai_error(response, 401)


@pytest.mark.anyio
async def test_recorders_of_two_processes_add_up_on_sqlite_and_postgresql(db_url):
    """The upsert adds to what another process wrote (SQLite's and PostgreSQL's ON CONFLICT); batch usage apart."""
    db = Database(db_url)
    try:
        await db.migrate()
        first, second = UsageRecorder(db), UsageRecorder(db)
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4}}
        first.record("completions", "proj_a", "m1", usage)
        second.record("completions", "proj_a", "m1", usage)
        second.record("completions", "proj_b", "m2", None)  # a stream cut short: a request with no known tokens
        token = in_batch.set(True)
        try:
            first.record("completions", "proj_a", "m1", usage)
        finally:
            in_batch.reset(token)
        first.record("embeddings", "proj_a", "e1", {"prompt_tokens": 7, "total_tokens": 7})
        await first.flush()
        await second.flush()
        first.record("completions", "proj_a", "m1", usage)
        query = {"start_time": [str(int(time.time()) - 120)], "group_by": ["project_id", "model", "batch"]}
        report = await first.report("completions", query)  # flushes first
        assert_matches_schema(report, "UsageResponse")
        got = {(r["project_id"], r["model"], r["batch"]): (r["input_tokens"], r["output_tokens"], r["input_cached_tokens"], r["num_model_requests"])
               for r in _results(report)}
        assert got == {("proj_a", "m1", False): (30, 15, 12, 3), ("proj_a", "m1", True): (10, 5, 4, 1), ("proj_b", "m2", False): (0, 0, 0, 1)}
        only_batch = await first.report("completions", {**query, "batch": ["true"], "group_by": []})
        assert [(r["input_tokens"], r["num_model_requests"]) for r in _results(only_batch)] == [(10, 1)]
        embedded = await second.report("embeddings", {"start_time": query["start_time"], "bucket_width": ["1m"]})
        assert_matches_schema(embedded, "UsageResponse")
        assert [(r["input_tokens"], r["num_model_requests"]) for r in _results(embedded)] == [(7, 1)]
        await first.close()
        await second.close()
    finally:
        await db.dispose()


def test_a_batchs_usage_is_batch_usage(server, admin):
    client = sdk(server, new_key())
    lines = [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"batch line {i}"}]}} for i in range(3)]
    source = client.files.create(file=("b.jsonl", io.BytesIO(b"".join(json.dumps(x).encode() + b"\n" for x in lines))), purpose="batch")
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 30
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert batch.status in ("validating", "in_progress", "finalizing") and time.monotonic() < deadline, batch
        time.sleep(0.05)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "not in a batch"}])
    wanted = batch.usage.input_tokens
    body = _poll(admin, "/usage/completions", None,
                 lambda b: any(r["batch"] and r["input_tokens"] == wanted for r in _results(b)), group_by=["project_id", "batch"])
    ours = [r for r in _results(body) if r["batch"] and r["input_tokens"] == wanted and r["num_model_requests"] == 3]
    assert len(ours) == 1 and ours[0]["output_tokens"] == batch.usage.output_tokens
    live = [r for r in _results(body) if r["project_id"] == ours[0]["project_id"] and r["batch"] is False]
    assert len(live) == 1 and live[0]["num_model_requests"] == 1


# ---- calls relayed byte for byte to an upstream: usage read from the relayed bytes ----

def test_relayed_usage_is_read_from_the_bytes():
    from app.services.relayed_usage import usage_of_relayed

    chat = {"id": "c", "object": "chat.completion", "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    assert usage_of_relayed(json.dumps(chat).encode(), b"", sse=False)["prompt_tokens"] == 7
    chunks = b"data: {\"choices\": []}\n\ndata: {\"choices\": [], \"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 2}}\n\ndata: [DONE]\n\n"
    assert usage_of_relayed(b"", chunks, sse=True) == {"prompt_tokens": 5, "completion_tokens": 2}
    completed = {"type": "response.completed", "response": {"usage": {"input_tokens": 9, "output_tokens": 4, "input_tokens_details": {"cached_tokens": 2}}}}
    assert usage_of_relayed(b"", b"event: response.completed\ndata: " + json.dumps(completed).encode() + b"\n\n", sse=True) == {
        "prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 4}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}}
    head = b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"
    tail = b"...cut line\nevent: message_delta\ndata: " + json.dumps(delta).encode() + b"\n\nevent: message_stop\ndata: {}\n\n"
    assert usage_of_relayed(head, tail, sse=True) == {"prompt_tokens": 15, "completion_tokens": 6, "prompt_tokens_details": {"cached_tokens": 4}}
    assert usage_of_relayed(b"", b"data: {\"choices\": []}\n\ndata: [DONE]\n\n", sse=True) is None  # no usage asked for


def test_relayed_calls_are_recorded(tmp_path):
    import anthropic

    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream(chunks=4) as fake:
        # Each stream ends a moment after its last event: the SDK leaves at [DONE] before that end, and the
        # tokens the upstream reported still count.
        fake.tail_delay = 0.5
        providers = [{"name": "oa", "kind": "openai", "base_url": fake.openai_url, "api_key": "sk-up", "responses": True},
                     {"name": "an", "kind": "anthropic", "base_url": fake.url, "api_key": "sk-ant-up"}]
        routes = [{"model": "gpt-*", "provider": "oa"}, {"model": "claude-*", "provider": "an"}]
        env = upstream_env(providers, routes, UNDERSTUDY_ADMIN_KEY=ADMIN_KEY)
        server = start_server(tmp_path / "relay", env)
        try:
            key, expected = new_key(), Counter()
            with sdk(server, key) as client:
                completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "relay me"}])
                _add(expected, completion.usage.prompt_tokens, completion.usage.completion_tokens)
                stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}],
                                                        stream=True, stream_options={"include_usage": True})
                usage = [chunk.usage for chunk in stream if chunk.usage][-1]
                _add(expected, usage.prompt_tokens, usage.completion_tokens)
                with client.responses.stream(model="gpt-4o-mini", input="a relayed response") as events:
                    final = events.get_final_response()
                _add(expected, final.usage.input_tokens, final.usage.output_tokens)
            with anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0) as claude:
                with claude.messages.stream(model="claude-x", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as events:
                    message = events.get_final_message()
                claude_expected = Counter()
                _add(claude_expected, message.usage.input_tokens, message.usage.output_tokens)
            with httpx.Client(base_url=f"{server.url}/v1/organization", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin:
                body = _poll(admin, "/usage/completions", None, lambda b: _requests(b, None) >= 4, group_by=["model"])
            by_model = {r["model"]: r for r in _results(body)}
            assert _matches(by_model["gpt-4o-mini"], expected), (by_model, expected)
            assert _matches(by_model["claude-x"], claude_expected), (by_model, claude_expected)
        finally:
            server.stop()
