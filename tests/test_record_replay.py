"""Record and replay of upstream exchanges, end to end: a live Understudy records every exchange with the
real fake upstream on loopback (UNDERSTUDY_RECORD); the fake is then stopped and a new server answers the
same flow from the cassettes alone (UNDERSTUDY_REPLAY): chat (plain and streamed), a Responses
conversation through previous_response_id, an Assistants run with a function call and its outputs,
Anthropic Messages relayed byte for byte (plain and streamed), and the same request twice.

The fake is told to answer each call with a different number of tokens while recording, so an answer
replayed from the wrong cassette (or the wrong turn of one) shows."""
from __future__ import annotations

import json
import re
import time

import anthropic
import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.fake_upstream import FakeUpstream, upstream_env

KEY = "sk-upstream-secret-for-cassettes"  # the only key the fake accepts; must never reach a cassette
HELLO = {"role": "user", "content": "Hello"}
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look things up.",
                                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
CLIENT_KEY = new_key()


def env_for(upstream: FakeUpstream, **extra: str) -> dict[str, str]:
    providers = [{"name": "up-openai", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY},
                 {"name": "up-anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": KEY}]
    routes = [{"model": "gpt-*", "provider": "up-openai"}, {"model": "claude-*", "provider": "up-anthropic"}]
    return upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="0", **extra)


def clients(server):
    return (openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=15),
            anthropic.Anthropic(base_url=server.url, api_key=CLIENT_KEY, max_retries=0, timeout=15))


def flow(oa: openai.OpenAI, ac: anthropic.Anthropic, tokens, repeats: int = 2) -> dict:
    """The calls recorded and then replayed; `tokens(n)` sets the fake's answer length (recording only);
    the last request is made `repeats` times."""
    out: dict = {}
    tokens(2)
    out["chat"] = oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO]).choices[0].message.content
    tokens(3)
    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO], stream=True, stream_options={"include_usage": True}))
    out["chat_stream"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    out["chat_stream_usage"] = chunks[-1].usage.completion_tokens
    tokens(4)
    first = oa.responses.create(model="gpt-4o-mini", input="Remember the word 'plum'.")
    tokens(5)
    second = oa.responses.create(model="gpt-4o-mini", input="Which word?", previous_response_id=first.id)
    out["responses"] = [first.output_text, second.output_text]
    tokens(6)
    assistant = oa.beta.assistants.create(model="gpt-4o-mini", instructions="Use the tool.", tools=[TOOL])
    run = oa.beta.threads.create_and_run_poll(assistant_id=assistant.id, thread={"messages": [HELLO]}, tool_choice="required", poll_interval_ms=50)
    assert run.status == "requires_action", run
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    out["tool_call"] = [call.function.name, json.loads(call.function.arguments)]
    tokens(7)
    run = oa.beta.threads.runs.submit_tool_outputs_and_poll(thread_id=run.thread_id, run_id=run.id, poll_interval_ms=50,
                                                             tool_outputs=[{"tool_call_id": call.id, "output": "plum"}])
    out["run_after_outputs"] = run.status
    out["run_reply"] = [m.content[0].text.value for m in oa.beta.threads.messages.list(run.thread_id, run_id=run.id).data if m.content]
    tokens(10)  # ids minted here differ on every run: the cassette's hash sees placeholders
    upload = oa.files.create(file=("notes.txt", b"plum"), purpose="assistants")
    about = f"Compare {upload.id} with {assistant.id}, then {upload.id} again."
    out["about_ids"] = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": about}]).choices[0].message.content
    tokens(8)
    out["anthropic"] = ac.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[HELLO]).content[0].text
    tokens(9)
    with ac.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=[HELLO]) as stream:
        out["anthropic_stream"] = [event.type for event in stream]
        out["anthropic_stream_text"] = stream.get_final_text()
    twice = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say it again."}]}
    out["twice"] = []
    for n in (2, 6, 4)[:repeats]:
        tokens(n)
        out["twice"].append(oa.chat.completions.create(**twice).choices[0].message.content)
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The flow against the live fake, recorded; the fake is stopped before anything replays."""
    cassettes = tmp_path_factory.mktemp("cassettes")
    with FakeUpstream(chunks=5, api_key=KEY) as fake:
        server = start_server(tmp_path_factory.mktemp("record"), env_for(fake, UNDERSTUDY_RECORD=str(cassettes)))
        oa, ac = clients(server)
        try:
            def tokens(n: int) -> None:
                fake.chunks = n
            out = flow(oa, ac, tokens)
            sent = len(fake.requests)
        finally:
            oa.close(), ac.close()
            server.stop()
    return {"out": out, "dir": cassettes, "upstream_requests": sent, "fake": fake}


@pytest.fixture(scope="module")
def replay_server(recording, tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("replay"), env_for(recording["fake"], UNDERSTUDY_REPLAY=str(recording["dir"])))
    yield server
    server.stop()


def cassette_files(directory) -> list:
    return sorted(p for p in directory.iterdir() if p.suffix == ".json")


def test_recording_writes_one_cassette_per_distinct_request_and_no_key(recording):
    files = cassette_files(recording["dir"])
    documents = [json.loads(p.read_text()) for p in files]
    exchanges = sum(len(d["exchanges"]) for d in documents)
    assert exchanges == recording["upstream_requests"] == 11  # every exchange is recorded, nothing else
    assert all(re.fullmatch(r"[0-9a-f]{32}\.json", p.name) and p.stem == d["hash"] for p, d in zip(files, documents))
    assert not [p for p in recording["dir"].iterdir() if p.suffix != ".json"]  # no temp file left behind
    twice = [d for d in documents if "Say it again." in json.dumps(d["request"]["body"])]
    assert len(twice) == 1 and len(twice[0]["exchanges"]) == 2
    streamed = [d for d in documents if d["request"]["body"].get("stream") and d["request"]["path"] == "/v1/chat/completions"]
    assert streamed and all(len(e["chunks"]) >= 1 and b"[DONE]" in "".join(e["chunks"]).encode() for d in streamed for e in d["exchanges"])
    assert any(d["request"]["path"] == "/v1/messages" for d in documents)
    [about] = [d for d in documents if "Compare" in json.dumps(d["request"]["body"])]
    assert about["request"]["body"]["messages"][0]["content"] == "Compare file-<1> with asst_<2>, then file-<1> again."
    everything = "\n".join(p.read_text() for p in files)
    assert KEY not in everything and CLIENT_KEY not in everything and "authorization" not in everything.lower()
    assert "x-api-key" not in everything.lower()


def test_replay_answers_the_same_flow_with_no_network(recording, replay_server):
    recorded = recording["out"]
    oa, ac = clients(replay_server)
    with oa, ac:
        replayed = flow(oa, ac, lambda n: None, repeats=3)  # a third time: the last recorded answer again
    assert recorded["chat"] == "tok0 tok1 " and recorded["chat_stream"] == "tok0 tok1 tok2 "  # the fake really varied
    assert recorded["twice"][0] != recorded["twice"][1]
    for name in ("chat", "chat_stream", "chat_stream_usage", "responses", "tool_call", "run_after_outputs", "run_reply", "about_ids",
                 "anthropic", "anthropic_stream", "anthropic_stream_text"):
        assert replayed[name] == recorded[name], name
    # the same request: the recorded answers in order, then the last one again
    assert replayed["twice"] == [*recorded["twice"], recorded["twice"][-1]]


def streamed_hello(oa: openai.OpenAI) -> str:
    """A streamed chat completion's text, read as the SDK reads it (it closes the stream at [DONE])."""
    return "".join(c.choices[0].delta.content or "" for c in oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO], stream=True)
                   if c.choices)


def test_a_stream_the_client_leaves_at_done_is_still_recorded(tmp_path):
    """The SDK closes a stream at `[DONE]`; the upstream's body may end a moment later. The client's going
    cancels the relay before that end: the recording is saved all the same, with what had arrived."""
    cassettes = tmp_path / "cassettes"
    with FakeUpstream(chunks=3, api_key=KEY) as fake:
        fake.tail_delay = 1.0
        server = start_server(tmp_path / "data", env_for(fake, UNDERSTUDY_RECORD=str(cassettes)))
        oa, ac = clients(server)
        try:
            with oa, ac:
                text = streamed_hello(oa)
                with ac.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=[HELLO]) as stream:
                    anthropic_text = stream.get_final_text()
            deadline = time.monotonic() + 5
            while len(cassette_files(cassettes)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            server.stop()
    assert text == "tok0 tok1 tok2 " and anthropic_text
    documents = {json.loads(p.read_text())["request"]["path"]: json.loads(p.read_text()) for p in cassette_files(cassettes)}
    assert set(documents) == {"/v1/chat/completions", "/v1/messages"}
    [chat] = documents["/v1/chat/completions"]["exchanges"]
    assert "data: [DONE]" in "".join(chat["chunks"])
    replay = start_server(tmp_path / "replay", env_for(fake, UNDERSTUDY_REPLAY=str(cassettes)))  # the fake is stopped
    oa, ac = clients(replay)
    try:
        with oa, ac:
            again = streamed_hello(oa)
    finally:
        replay.stop()
    assert again == text


def test_the_hash_ignores_key_order_credentials_and_which_minted_ids():
    """Pure normalisation (app/inference/cassettes.py): what a replay matches on."""
    from app.core.ids import new_id
    from app.inference.cassettes import Request

    def key(body: dict, url="http://a:1/v1/chat/completions", auth="Bearer sk-1") -> str:
        return Request("POST", url, {"authorization": auth, "content-type": "application/json"}, json.dumps(body).encode()).key
    one, two = new_id("msg_"), new_id("msg_")
    assert key({"a": one, "b": [two, one]}) == key({"b": [one, two], "a": two}, url="http://b:2/v1/chat/completions", auth="Bearer sk-2")
    assert key({"a": one, "b": [two, one]}) != key({"a": one, "b": [two, two]})  # which id is which still counts
    assert key({"a": "msg_fake"}) != key({"a": "msg_other"})  # not minted here: the upstream's, kept as they are
    assert key({"a": 1}) != key({"a": 1}, url="http://a:1/v1/completions")


def test_a_request_not_recorded_is_a_400_cassette_miss(replay_server):
    with httpx.Client(base_url=replay_server.url, headers={"authorization": f"Bearer {new_key()}"}, timeout=15) as raw:
        for stream in (False, True):
            response = raw.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "Never recorded."}]})
            error = assert_openai_error(response, 400, code="cassette_miss", param=None)
            assert "cassette miss" in error["message"] and "POST /v1/chat/completions" in error["message"]
            assert re.search(r"hash [0-9a-f]{32}", error["message"]), error
    oa, ac = clients(replay_server)
    with oa, pytest.raises(openai.BadRequestError) as caught:
        oa.embeddings.create(model="gpt-embed-never", input="x")
    assert caught.value.code == "cassette_miss"
    with ac, pytest.raises(anthropic.BadRequestError) as missed:  # a relayed Messages call: Anthropic's error shape
        ac.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "Never recorded."}])
    assert missed.value.body["type"] == "error" and missed.value.body["error"]["type"] == "invalid_request_error"
    assert "cassette miss" in missed.value.body["error"]["message"]


def test_passthrough_sends_misses_upstream_and_records_them(recording, tmp_path):
    again = tmp_path / "more-cassettes"
    with FakeUpstream(chunks=5, api_key=KEY) as fake:
        env = env_for(fake, UNDERSTUDY_REPLAY=str(recording["dir"]), UNDERSTUDY_REPLAY_MISS="passthrough", UNDERSTUDY_RECORD=str(again))
        server = start_server(tmp_path / "data", env)
        oa, _ = clients(server)
        try:
            with oa:
                hit = oa.chat.completions.create(model="gpt-4o-mini", messages=[HELLO]).choices[0].message.content
                assert hit == recording["out"]["chat"] and not fake.requests  # recorded: no network
                miss = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Fresh."}])
        finally:
            server.stop()
        assert miss.choices[0].message.content == fake.text() and len(fake.requests) == 1
        assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    [written] = cassette_files(again)
    document = json.loads(written.read_text())
    assert document["request"]["body"]["messages"] == [{"role": "user", "content": "Fresh."}]
    assert json.loads("".join(document["exchanges"][0]["chunks"]))["choices"][0]["message"]["content"] == fake.text()


def test_bad_settings_stop_the_server_at_start(tmp_path):
    with pytest.raises(RuntimeError, match="UNDERSTUDY_REPLAY: .* is not a directory"):
        start_server(tmp_path / "a", {"UNDERSTUDY_REPLAY": str(tmp_path / "missing")})
    with pytest.raises(RuntimeError, match="UNDERSTUDY_REPLAY_MISS must be one of error, passthrough"):
        start_server(tmp_path / "b", {"UNDERSTUDY_REPLAY": str(tmp_path), "UNDERSTUDY_REPLAY_MISS": "maybe"})
