"""Per-project rate limits: OpenAI's x-ratelimit-* headers, its 429 body, per-project overrides, and
counters shared through Redis by several API processes."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.test_db import pg_databases  # noqa: F401  (fixture: fresh PostgreSQL databases)
from tests.support.redis_db import claim_redis_db  # a Redis database of this test's own

ADMIN_KEY = "sk-admin-ratelimits-" + "0" * 8
HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")
TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
HI = [{"role": "user", "content": "hi"}]


def sdk(server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or new_key(), max_retries=0)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("limited"), {"UNDERSTUDY_RATE_LIMIT_RPM": "3", "UNDERSTUDY_ADMIN_KEY": ADMIN_KEY})
    yield srv
    srv.stop()


def test_no_limits_by_default_no_headers(client):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert raw.http_response.status_code == 200
    assert not [name for name in raw.headers if name.startswith("x-ratelimit-")]
    for _ in range(5):  # nothing counts
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)


def test_fourth_request_in_a_minute_is_a_429_with_openais_body_and_headers(limited):
    client = sdk(limited)
    for remaining in (2, 1, 0):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit configured
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    response = caught.value.response
    error = assert_openai_error(response, 429, param=None, code="rate_limit_exceeded", type_="requests")
    assert error["message"].startswith("Rate limit reached for gpt-4o-mini in project ")
    assert "on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in " in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert all(name in response.headers for name in HEADERS)
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    # Embeddings share the project's window; requests that call no model are not limited.
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert client.models.list().data
    # Another project is unaffected.
    other = sdk(limited).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert other.headers["x-ratelimit-remaining-requests"] == "2"


def test_streams_and_responses_are_limited_too(limited):
    client = sdk(limited)
    with client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True) as stream:
        assert [chunk for chunk in stream]
    client.responses.create(model="gpt-4o-mini", input="hi")
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=5)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-4o-mini", input="hi")


def test_a_request_over_the_token_budget_is_refused(tmp_path):
    srv = start_server(tmp_path, {"UNDERSTUDY_RATE_LIMIT_TPM": "200"})
    try:
        client = sdk(srv)
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI, max_tokens=100)
        assert raw.headers["x-ratelimit-limit-tokens"] == "200"
        used = 200 - int(raw.headers["x-ratelimit-remaining-tokens"])
        assert 100 < used < 120  # the prompt's estimate plus max_tokens
        assert raw.headers["x-ratelimit-reset-tokens"].endswith("s")
        assert "x-ratelimit-limit-requests" not in raw.headers
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=150)
        error = assert_openai_error(caught.value.response, 429, code="rate_limit_exceeded", type_="tokens")
        assert f"on tokens per min (TPM): Limit 200, Used {used}, Requested " in error["message"]
        assert caught.value.response.headers["retry-after"]
        # A smaller request still fits in what is left.
        assert client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=20).choices
    finally:
        srv.stop()


def test_project_rate_limits_admin_api(limited):
    admin = httpx.Client(base_url=f"{limited.url}/v1/organization", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    client = sdk(limited)
    before = _projects(admin)
    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    project = _new_project(admin, before)
    assert httpx.get(f"{limited.url}/v1/organization/projects/{project}/rate_limits").status_code == 401
    listed = admin.get(f"/projects/{project}/rate_limits").json()
    assert listed["object"] == "list" and listed["data"][0]["id"] == "rl-*" and listed["data"][0]["max_requests_per_1_minute"] == 3
    # Its own limit for one model: that model gets its own window and limit.
    updated = admin.post(f"/projects/{project}/rate_limits/rl-gpt-4o", json={"max_requests_per_1_minute": 1, "max_tokens_per_1_minute": 0})
    assert updated.status_code == 200, updated.text
    assert updated.json() == {"object": "project.rate_limit", "id": "rl-gpt-4o", "model": "gpt-4o",
                              "max_requests_per_1_minute": 1, "max_tokens_per_1_minute": 0}
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-ratelimit-limit-requests"] == "1"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI).headers["x-ratelimit-remaining-requests"] == "1"
    assert [item["id"] for item in admin.get(f"/projects/{project}/rate_limits").json()["data"]] == ["rl-*", "rl-gpt-4o"]
    bad = admin.post(f"/projects/{project}/rate_limits/rl-gpt-4o", json={"max_requests_per_1_minute": -1})
    assert_openai_error(bad, 400, param="max_requests_per_1_minute")


def _projects(admin: httpx.Client) -> set[str]:
    body = admin.get("/usage/completions", params={"start_time": int(time.time()) - 600, "group_by": "project_id"}).json()
    return {r["project_id"] for b in body["data"] for r in b["results"]}


def _new_project(admin: httpx.Client, before: set[str]) -> str:
    """This test's project (its tenant, in open mode): the one that appears in the usage report."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = _projects(admin) - before
        if new:
            (project,) = new
            return project
        time.sleep(0.2)
    raise AssertionError("no usage recorded")


def test_two_api_processes_share_the_counters_through_redis(tmp_path, pg_databases):  # noqa: F811
    with claim_redis_db() as redis_url:
        _share_counters(tmp_path, {"UNDERSTUDY_DATABASE_URL": pg_databases(), "UNDERSTUDY_REDIS_URL": redis_url, "UNDERSTUDY_RATE_LIMIT_RPM": "3"})


def _share_counters(tmp_path, env: dict[str, str]) -> None:
    first = start_server(tmp_path / "a", env)
    try:
        second = start_server(tmp_path / "b", env)
        try:
            key = new_key()
            a, b = sdk(first, key), sdk(second, key)
            assert a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI).headers["x-ratelimit-remaining-requests"] == "2"
            assert b.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI).headers["x-ratelimit-remaining-requests"] == "1"
            assert a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI).headers["x-ratelimit-remaining-requests"] == "0"
            for client in (a, b):
                with pytest.raises(openai.RateLimitError):
                    client.chat.completions.create(model="gpt-4o-mini", messages=HI)
            assert sdk(second).chat.completions.create(model="gpt-4o-mini", messages=HI).choices  # another project
        finally:
            second.stop()
    finally:
        first.stop()


def test_token_estimates_of_every_kind():
    from app.services.rate_limits import estimate_tokens

    assert estimate_tokens("embeddings", {"input": ["hello world", [1, 2, 3]]}) == 2 + 3
    assert estimate_tokens("completions", {"prompt": "hello world"}) == 2 + 16  # the legacy default max_tokens
    chat = estimate_tokens("chat", {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 10, "n": 2})
    assert chat > 2 * 10
