"""The Responses `code_interpreter` tool through the official SDK (and the Agents SDK): the offline model calls
it when asked to compute, the code runs in a container (auto or named) whose files persist between calls,
OpenAI's stream events in order, outputs on `include`, citations of written files; and through an upstream,
whose call to the hosted tool's function is executed. Needs the sandbox (bwrap): under CI=true a skip fails."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from app.services.assistants.sandbox import sandbox_available
from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env
from tests.support.openapi import assert_matches_schema

AVAILABLE, WHY = sandbox_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"no sandbox here: {WHY}")
MODEL = "gpt-4o-mini"
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
INCLUDE = ["code_interpreter_call.outputs"]


def _call(response):
    return next(item for item in response.output if item.type == "code_interpreter_call")


def test_auto_container_runs_the_code_with_outputs_and_a_citation(client, http):
    raw = http.post("/responses", json={"model": MODEL, "input": "Calculate 17 * 23 + 4 and save it to result.txt", "tools": [AUTO],
                                        "include": INCLUDE}).json()
    assert_matches_schema(raw, "Response")
    call, message = raw["output"]
    assert call["type"] == "code_interpreter_call" and call["id"].startswith("ci_") and call["status"] == "completed"
    assert "17 * 23 + 4" in call["code"] and call["container_id"].startswith("cntr_")
    assert call["outputs"] == [{"type": "logs", "logs": "395\nwrote result.txt\n"}]
    container = client.containers.retrieve(call["container_id"])
    assert container.status == "running"
    written = client.containers.files.list(container.id).data
    assert [(f.path, f.source) for f in written] == [("/mnt/data/result.txt", "assistant")]
    assert client.containers.files.content.retrieve(written[0].id, container_id=container.id).read() == b"395\n"
    text = message["content"][0]
    citation = next(a for a in text["annotations"] if a["type"] == "container_file_citation")
    assert citation == {"type": "container_file_citation", "container_id": container.id, "file_id": written[0].id, "filename": "result.txt",
                        "start_index": citation["start_index"], "end_index": citation["end_index"]}
    assert text["text"][citation["start_index"]:citation["end_index"]] == "sandbox:/mnt/data/result.txt"
    # without `include`, outputs are null; a later retrieve with include has them
    plain = client.responses.create(model=MODEL, input="What is 2^10?", tools=[AUTO])
    assert _call(plain).outputs is None and "2**10" in _call(plain).code
    fetched = client.responses.retrieve(plain.id, include=INCLUDE)
    assert _call(fetched).outputs[0].logs == "1024\n"
    assert client.responses.retrieve(plain.id).output[0].outputs is None


def test_files_persist_between_calls_in_a_named_container(client):
    container = client.containers.create(name="work")
    client.containers.files.create(container.id, file=("numbers.txt", b"1\n2\n3\n"))
    tool = {"type": "code_interpreter", "container": container.id}
    first = client.responses.create(model=MODEL, tools=[tool], include=INCLUDE, input=(
        "Run this code:\n```python\nnums = [int(x) for x in open('numbers.txt')]\nopen('total.txt', 'w').write(str(sum(nums)))\nprint(sum(nums))\n```"))
    assert _call(first).container_id == container.id and _call(first).outputs[0].logs == "6\n"
    second = client.responses.create(model=MODEL, tools=[tool], include=INCLUDE, input=(
        "Run this code:\n```python\nimport os\nprint(sorted(os.listdir('.')), open('/mnt/data/total.txt').read())\n```"))
    assert _call(second).outputs[0].logs == "['numbers.txt', 'total.txt'] 6\n"
    paths = {f.path: f.source for f in client.containers.files.list(container.id)}
    assert paths == {"/mnt/data/numbers.txt": "user", "/mnt/data/total.txt": "assistant"}


def test_auto_reuses_the_chains_container_and_takes_file_ids(client):
    source = client.files.create(file=("data.csv", b"x\n4\n5\n"), purpose="user_data")
    tool = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": [source.id], "memory_limit": "4g"}}
    first = client.responses.create(model=MODEL, tools=[tool], include=INCLUDE, input=(
        "Run this code:\n```python\nprint(open('data.csv').read().split())\nopen('seen.txt', 'w').write('yes')\n```"))
    assert _call(first).outputs[0].logs == "['x', '4', '5']\n"
    container = client.containers.retrieve(_call(first).container_id)
    assert container.memory_limit == "4g"
    second = client.responses.create(model=MODEL, tools=[{"type": "code_interpreter", "container": "auto"}], previous_response_id=first.id,
                                     include=INCLUDE, input="Run this code:\n```python\nprint(open('seen.txt').read())\n```")
    assert _call(second).container_id == container.id and _call(second).outputs[0].logs == "yes\n"
    fresh = client.responses.create(model=MODEL, tools=[AUTO], input="Calculate 1 + 1")
    assert _call(fresh).container_id != container.id  # no chain: a container of its own


def test_streaming_events_in_openais_order(client, http):
    with client.responses.stream(model=MODEL, input="compute 6 * 7", tools=[AUTO], include=INCLUDE) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    start = kinds.index("response.output_item.added")
    deltas = [e for e in events if e.type == "response.code_interpreter_call_code.delta"]
    assert deltas
    assert kinds[start:start + 2] == ["response.output_item.added", "response.code_interpreter_call.in_progress"]
    after = kinds[start + 2 + len(deltas):start + 2 + len(deltas) + 5]
    assert after == ["response.code_interpreter_call_code.done", "response.code_interpreter_call.interpreting",
                     "response.code_interpreter_call.completed", "response.output_item.done", "response.output_item.added"]
    call = _call(final)
    assert "".join(d.delta for d in deltas) == call.code == next(e.code for e in events if e.type == "response.code_interpreter_call_code.done")
    assert all(e.item_id == call.id and e.output_index == 0 for e in deltas)
    assert kinds[-1] == "response.completed" and call.outputs[0].logs == "42\n"
    schemas = {"response.code_interpreter_call_code.delta": "ResponseCodeInterpreterCallCodeDeltaEvent",
               "response.code_interpreter_call_code.done": "ResponseCodeInterpreterCallCodeDoneEvent",
               "response.code_interpreter_call.in_progress": "ResponseCodeInterpreterCallInProgressEvent",
               "response.code_interpreter_call.interpreting": "ResponseCodeInterpreterCallInterpretingEvent",
               "response.code_interpreter_call.completed": "ResponseCodeInterpreterCallCompletedEvent"}
    for event in events:
        if event.type in schemas:
            assert_matches_schema(event.model_dump(exclude_unset=True), schemas[event.type])
    assert_matches_schema(final.model_dump(exclude_unset=True), "Response")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # The wire events as sent, not as the SDK parsed them: each one, items and responses included.
    with http.stream("POST", "/responses", json={"model": MODEL, "input": "compute 6 * 7", "tools": [AUTO], "include": INCLUDE,
                                                 "stream": True}) as raw:
        wire = [json.loads(line[6:]) for line in raw.read().decode().split("\n") if line.startswith("data: ")]
    assert "response.code_interpreter_call.completed" in [e["type"] for e in wire]
    for event in wire:
        assert_matches_schema(event, "ResponseStreamEvent")


def test_tool_choice_forces_it_and_an_image_output(client):
    plain = client.responses.create(model=MODEL, input="Hello there", tools=[AUTO])
    assert [item.type for item in plain.output] == ["message"]  # not asked to compute: no call
    code = ("import zlib, struct\n"
            "def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))\n"
            "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0))"
            " + chunk(b'IDAT', zlib.compress(b'\\x00\\xff\\x00\\x00')) + chunk(b'IEND', b'')\n"
            "open('dot.png', 'wb').write(png)\n")
    forced = client.responses.create(model=MODEL, input=f"Hello there\n```python\n{code}```", tools=[AUTO], include=INCLUDE,
                                     tool_choice={"type": "code_interpreter"})
    call = _call(forced)
    assert call.status == "completed"
    image = next(o for o in call.outputs if o.type == "image")
    assert image.url.startswith("data:image/png;base64,")


def test_bad_containers(client, http, server):
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter", "container": "cntr_nope"}]}),
                        404, param="container_id")
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter", "container": "abc"}]}),
                        400, param="tools[0].container")
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter"}]}),
                        400, param="tools[0].container")
    missing = {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-nope"]}}
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [missing]}), 404, param="file_id")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        theirs = other.containers.create(name="theirs")
    assert_openai_error(http.post("/responses", json={"model": MODEL, "input": "x", "tools": [{"type": "code_interpreter", "container": theirs.id}]}),
                        404, param="container_id")


def test_an_expired_container_is_refused(tmp_path):
    srv = start_server(tmp_path / "quick", {"UNDERSTUDY_CONTAINER_MINUTE_SECONDS": "1"})
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=new_key(), max_retries=0) as sdk:
            container = sdk.containers.create(name="short", expires_after={"anchor": "last_active_at", "minutes": 1})
            time.sleep(2.2)
            with pytest.raises(openai.BadRequestError) as refused:
                sdk.responses.create(model=MODEL, input="compute 1 + 1", tools=[{"type": "code_interpreter", "container": container.id}])
            assert refused.value.code == "container_expired"
    finally:
        srv.stop()


def test_an_upstreams_call_to_the_tool_is_executed(tmp_path):
    """A chat-only upstream gets the hosted tool as a `code_interpreter` function; its call runs here."""
    with FakeUpstream(chunks=3, api_key="sk-up") as fake:
        providers = [{"name": "chat-only", "kind": "openai", "base_url": fake.openai_url, "api_key": "sk-up"}]
        env = upstream_env(providers, [{"model": "local-*", "provider": "chat-only"}], UNDERSTUDY_EXTRA_MODELS="local-llama",
                           UNDERSTUDY_UPSTREAM_MAX_RETRIES="0")
        srv = start_server(tmp_path / "up", env)
        try:
            with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=new_key(), max_retries=0) as sdk:
                response = sdk.responses.create(model="local-llama", input="anything", tools=[AUTO], tool_choice={"type": "code_interpreter"})
            asked = [r.json() for r in fake.requests if r.path.endswith("/chat/completions")]
            assert asked[0]["tools"][0]["function"]["name"] == "code_interpreter"
            assert asked[0]["tool_choice"] == {"type": "function", "function": {"name": "code_interpreter"}}
            call = _call(response)
            assert call.status == "completed" and call.container_id.startswith("cntr_")
            assert asked[1]["messages"][-1]["role"] == "tool"  # the result went back to the model
            assert response.output[-1].type == "message"
        finally:
            srv.stop()


def test_the_agents_sdk_code_interpreter_tool(server, api_key):
    agents = pytest.importorskip("agents")

    async def main():
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0)
        agents.set_default_openai_client(client, use_for_tracing=False)
        agents.set_default_openai_api("responses")
        agents.set_tracing_disabled(True)
        agent = agents.Agent(name="calc", model=MODEL, instructions="Use the code interpreter for arithmetic.",
                             tools=[agents.CodeInterpreterTool(tool_config={"type": "code_interpreter", "container": {"type": "auto"}})])
        try:
            return await agents.Runner.run(agent, "Calculate 12 * 12")
        finally:
            await client.close()

    result = asyncio.run(main())
    kinds = [item.type for item in result.new_items]
    assert "tool_call_item" in kinds and kinds[-1] == "message_output_item"
    call = next(item.raw_item for item in result.new_items if item.type == "tool_call_item")
    assert call.type == "code_interpreter_call" and call.container_id.startswith("cntr_")
    assert "144" in result.final_output
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_the_code_streams_out_of_partial_arguments():
    from app.services.responses.code import partial_code

    whole = '{"code": "print(\\"h\\u00e9\\")\\nx = 1"}'
    seen = [partial_code(whole[:n]) for n in range(len(whole) + 1)]
    assert seen[-1] == 'print("hé")\nx = 1'
    assert all(seen[-1].startswith(s) for s in seen)  # never a character that is later taken back
    assert partial_code('{"co') == "" and partial_code('{"code": "a\\') == "a"
