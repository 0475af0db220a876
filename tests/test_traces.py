"""`POST /v1/traces/ingest` as the Agents SDK's `BackendSpanExporter` sends it (its headers, `{"data": [...]}`
of `Trace.export()` / `Span.export()` items — written out here, openai-agents is not a test dependency),
and the read endpoints under `/_understudy/v1`."""
from __future__ import annotations

import secrets

import httpx
import pytest

from tests.conftest import assert_openai_error, new_key


def _trace_id() -> str:
    return f"trace_{secrets.token_hex(16)}"


def exported(trace_id: str, workflow: str = "Weather agent") -> list[dict]:
    """What one `Runner.run` exports: the trace, then its spans as they end (children before parents)."""
    agent, generation, function = (f"span_{secrets.token_hex(12)}" for _ in range(3))
    times = {"started_at": "2026-12-05T07:00:00.000001+00:00", "ended_at": "2026-12-05T07:00:01.000001+00:00"}
    return [
        {"object": "trace", "id": trace_id, "workflow_name": workflow, "group_id": "thread-42", "metadata": {"user": "ada"}},
        {"object": "trace.span", "id": generation, "trace_id": trace_id, "parent_id": agent, **times, "error": None,
         "span_data": {"type": "generation", "input": [{"role": "user", "content": "Weather in Oslo?"}], "output": [],
                       "model": "gpt-4o-mini", "model_config": {}, "usage": {"input_tokens": 12, "output_tokens": 5}}},
        {"object": "trace.span", "id": function, "trace_id": trace_id, "parent_id": agent, **times,
         "error": {"message": "Error running tool", "data": {"tool_name": "get_weather"}},
         "span_data": {"type": "function", "name": "get_weather", "input": "{\"city\": \"Oslo\"}", "output": None, "mcp_data": None}},
        {"object": "trace.span", "id": agent, "trace_id": trace_id, "parent_id": None, **times, "error": None,
         "span_data": {"type": "agent", "name": "Weather agent", "handoffs": [], "tools": ["get_weather"], "output_type": "str"}},
    ]


@pytest.fixture
def exporter(server, api_key):
    """An HTTP client sending what the exporter sends, with its headers."""
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json", "OpenAI-Beta": "traces=v1"}
    with httpx.Client(base_url=f"{server.url}/v1", headers=headers, timeout=30) as c:
        yield c


@pytest.fixture
def reader(server, api_key):
    with httpx.Client(base_url=f"{server.url}/_understudy/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as c:
        yield c


def test_an_exported_run_is_stored_and_read_back(exporter, reader):
    trace_id = _trace_id()
    items = exported(trace_id)
    sent = exporter.post("/traces/ingest", json={"data": items})
    assert sent.status_code == 204 and sent.content == b""

    trace = reader.get(f"/traces/{trace_id}").json()
    assert trace["object"] == "trace" and trace["id"] == trace_id and isinstance(trace["created_at"], int)
    assert (trace["workflow_name"], trace["group_id"], trace["metadata"]) == ("Weather agent", "thread-42", {"user": "ada"})

    spans = reader.get(f"/traces/{trace_id}/spans").json()
    assert spans["object"] == "list" and not spans["has_more"]
    assert [s["id"] for s in spans["data"]] == [item["id"] for item in items[1:]]  # in the order they finished
    assert spans["data"][1]["error"]["message"] == "Error running tool"
    assert spans["data"][0]["span_data"]["usage"] == {"input_tokens": 12, "output_tokens": 5}
    assert spans["first_id"] == items[1]["id"] and spans["last_id"] == items[3]["id"]

    listed = reader.get("/traces").json()
    assert [t["id"] for t in listed["data"]] == [trace_id]


def test_a_retried_export_stores_nothing_twice(exporter, reader):
    trace_id = _trace_id()
    items = exported(trace_id)
    for _ in range(2):  # the exporter retries a batch whose answer it did not get
        assert exporter.post("/traces/ingest", json={"data": items}).status_code == 204
    assert len(reader.get("/traces").json()["data"]) == 1
    assert len(reader.get(f"/traces/{trace_id}/spans").json()["data"]) == 3


def test_traces_list_newest_first_and_page(exporter, reader):
    ids = [_trace_id() for _ in range(5)]
    for trace_id in ids:  # one batch per trace, as the exporter's background thread sends them
        assert exporter.post("/traces/ingest", json={"data": exported(trace_id)[:1]}).status_code == 204
    first = reader.get("/traces", params={"limit": 2}).json()
    assert [t["id"] for t in first["data"]] == ids[:2:-1][:2] == [ids[4], ids[3]] and first["has_more"]
    rest = reader.get("/traces", params={"limit": 10, "after": first["last_id"]}).json()
    assert [t["id"] for t in rest["data"]] == [ids[2], ids[1], ids[0]] and not rest["has_more"]
    oldest = reader.get("/traces", params={"order": "asc", "limit": 1}).json()
    assert oldest["data"][0]["id"] == ids[0]


def test_spans_that_arrive_before_or_without_their_trace(exporter, reader):
    trace_id = _trace_id()
    spans_only = exported(trace_id)[1:]
    assert exporter.post("/traces/ingest", json={"data": spans_only}).status_code == 204
    trace = reader.get(f"/traces/{trace_id}").json()
    assert trace["id"] == trace_id and trace["workflow_name"] is None
    assert len(reader.get(f"/traces/{trace_id}/spans").json()["data"]) == 3


def test_traces_are_per_tenant(server, exporter, reader):
    trace_id = _trace_id()
    assert exporter.post("/traces/ingest", json={"data": exported(trace_id)}).status_code == 204
    with httpx.Client(base_url=f"{server.url}/_understudy/v1", headers={"Authorization": f"Bearer {new_key()}"}) as other:
        assert other.get("/traces").json()["data"] == []
        assert_openai_error(other.get(f"/traces/{trace_id}"), 404)
        assert other.get(f"/traces/{trace_id}/spans").json()["data"] == []
    assert_openai_error(httpx.get(f"{server.url}/_understudy/v1/traces"), 401)


def test_unknown_trace_is_404(reader):
    error = assert_openai_error(reader.get("/traces/trace_nope"), 404)
    assert error["message"] == "No such trace object: trace_nope"


@pytest.mark.parametrize(("body", "param", "code"), [
    ({}, "data", "missing_required_parameter"),
    ({"data": "trace"}, "data", "invalid_type"),
    ({"data": [{"object": "trace"}]}, "data[0].id", "missing_required_parameter"),
    ({"data": [{"object": "trace.span", "id": "span_1"}]}, "data[0].trace_id", "missing_required_parameter"),
    ({"data": [{"object": "trace", "id": 7}]}, "data[0].id", "invalid_type"),
    ({"data": [{"object": "trace", "id": "t" * 129}]}, "data[0].id", "invalid_value"),
    ({"data": [{"object": "trace", "id": "t"}] * 10_001}, "data", "array_above_max_length"),
    ({"data": [], "extra": 1}, "extra", "unknown_parameter"),
])
def test_bad_batches_are_400_and_store_nothing(exporter, reader, body, param, code):
    assert_openai_error(exporter.post("/traces/ingest", json=body), 400, param=param, code=code)
    assert reader.get("/traces").json()["data"] == []


def test_unknown_item_object_is_400(exporter):
    error = assert_openai_error(exporter.post("/traces/ingest", json={"data": [{"object": "log", "id": "x"}]}), 400)
    assert error["param"].startswith("data[0]")


def test_not_json_is_400(exporter):
    assert_openai_error(exporter.post("/traces/ingest", content=b"{nope", headers={"Content-Type": "application/json"}), 400)
