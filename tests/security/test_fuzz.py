"""Fuzzing every model endpoint we route, against a live server: no answer is a 5xx, and every 4xx is in
the protocol's own error shape (OpenAI's `{"error": {...}}`, Anthropic's `{"type": "error", ...}`).

Two parts, both reproducible (no randomness left to the run):
- bodies drawn from the official OpenAPI specs' request schemas (tests/security/spec_bodies.py) by
  hypothesis + hypothesis-jsonschema, derandomized, a fixed number per operation, no shrinking: about
  half a minute on two cores;
- the type-mutation cases of tests/security/type_mutation.py: each field of valid requests replaced by
  values of other types (null, numbers beyond 64 bits, strings, lists, objects, 930 levels of nesting),
  three mutants per field chosen by a hash of its path, plus the field removed.
"""
from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.security import spec_bodies, type_mutation

EXAMPLES_PER_OPERATION = 20
_RUNS: list[tuple[str, str, str]] = []  # (thread id, run id, body) of the runs the spec bodies started


@pytest.fixture(scope="module")
def fuzz_client(server):
    key = "sk-fuzz-" + secrets.token_hex(8)
    with type_mutation.client_for(server.url, key) as client:
        client.timeout = httpx.Timeout(30)
        yield client


@pytest.fixture(scope="module")
def ids(fuzz_client) -> dict[str, str]:
    return type_mutation.setup(fuzz_client)


def _problem(protocol: str, response: httpx.Response) -> str | None:
    if response.status_code >= 500:
        return f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        return type_mutation.error_shape_problem(protocol, response)
    return None


@pytest.mark.parametrize("operation", spec_bodies.OPERATIONS, ids=lambda op: op.name)
@settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example])
@given(data=st.data())
def test_spec_bodies_get_no_5xx(fuzz_client, ids, operation, data):
    body = data.draw(spec_bodies.bodies(operation, ids), label="body")
    response = fuzz_client.post(operation.path.format(**ids), content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    note(f"{response.status_code} {response.text[:300]}")
    assert _problem(operation.protocol, response) is None, f"POST {operation.path}: {_problem(operation.protocol, response)}"
    if response.status_code == 200 and response.headers.get("content-type", "").startswith("application/json"):
        answer = response.json()
        if answer.get("object") == "thread.run":
            _RUNS.append((answer["thread_id"], answer["id"], json.dumps(body)[:500]))


def test_runs_from_spec_bodies_did_not_crash(fuzz_client):
    """An accepted run executes as a job: a body the API took must not make the job crash (it would end
    `failed` with the generic server error) — the request should have been refused instead."""
    crashed = []
    deadline = time.monotonic() + 30
    for thread_id, run_id, body in _RUNS:
        while True:
            run = fuzz_client.get(f"/v1/threads/{thread_id}/runs/{run_id}").json()
            if run["status"] not in ("queued", "in_progress", "cancelling") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if (run.get("last_error") or {}).get("message") == "The server had an error while processing the run.":
            crashed.append(f"{run_id}: {body}")
    assert not crashed, "\n".join(crashed)


@pytest.mark.parametrize("endpoint", type_mutation.ENDPOINTS, ids=lambda e: e.name)
def test_type_mutations_get_no_5xx(fuzz_client, ids, endpoint):
    problems = []
    for case, body in type_mutation.cases(endpoint, ids, sample=3):
        problem = type_mutation.check(fuzz_client, endpoint, body, ids)
        if problem:
            problems.append(f"{case}: {problem}")
    assert not problems, f"{len(problems)} problems on {endpoint.path}:\n" + "\n".join(problems[:20])


def test_server_is_still_healthy(server):
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
