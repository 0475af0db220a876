"""The Realtime API over its WebSocket, driven by the official SDK's `client.realtime.connect()` (and the
Agents SDK's realtime agent): event order, audio in and out, function calls, session updates, errors as
events, client secrets, the calls endpoints, and the limits a session is held to."""
from __future__ import annotations

import asyncio
import base64
import copy
import json
import time

import httpx
import numpy as np
import openai
import pytest
import websockets

from tests.conftest import new_key, start_server
from tests.support.openapi import assert_matches_schema, schemas as spec_schemas

MODEL = "gpt-realtime"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def sdk(server, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


async def until(conn, kind: str) -> list:
    """Events up to and including the first of type `kind`."""
    seen = []
    async for event in conn:
        seen.append(event)
        if event.type == kind:
            return seen
    raise AssertionError(f"socket closed before {kind}: {[e.type for e in seen]}")


def squeeze(types: list[str]) -> list[str]:
    """Event types with runs of one delta type collapsed to one entry."""
    out: list[str] = []
    for kind in types:
        if not (kind.endswith(".delta") and out and out[-1] == kind):
            out.append(kind)
    return out


def tone(seconds: float, loud: bool = True) -> bytes:
    t = np.arange(int(24000 * seconds)) / 24000
    amplitude = 8000 if loud else 0
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def add_rule(server, key: str, rule: dict) -> None:
    response = httpx.post(f"{server.url}/_understudy/v1/rules", json=rule, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text


TEXT_ORDER = ["response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
              "response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done",
              "conversation.item.done", "response.done"]


def test_text_round_trip_in_openai_order(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            created = await conn.recv()
            assert created.type == "session.created" and created.session.model == MODEL and created.session.id.startswith("sess_")
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            assert (await conn.recv()).session.output_modalities == ["text"]
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello"}]})
            added, done = await conn.recv(), await conn.recv()
            assert (added.type, done.type) == ("conversation.item.added", "conversation.item.done")
            user_id = added.item.id
            await conn.response.create()
            events = await until(conn, "response.done")
            assert squeeze([e.type for e in events]) == TEXT_ORDER
            deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
            final = events[-1].response
            assert final.status == "completed" and final.id.startswith("resp_") and final.conversation_id.startswith("conv_")
            assert final.output[0].content[0].type == "output_text" and final.output[0].content[0].text == deltas != ""
            assert {e.response_id for e in events[1:-1] if hasattr(e, "response_id")} == {final.id}
            assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
            assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens
            assert events[2].previous_item_id == user_id  # the answer follows the question
            await conn.conversation.item.retrieve(item_id=final.output[0].id)
            retrieved = await conn.recv()
            assert retrieved.type == "conversation.item.retrieved" and retrieved.item.content[0].text == deltas
    run(main())


def test_audio_in_transcribed_and_audio_out(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None, "transcription": {"model": "gpt-4o-mini-transcribe"}},
                                                                               "output": {"voice": "marin"}}})
            updated = await conn.recv()
            assert updated.session.audio.input.turn_detection is None and updated.session.audio.output.voice == "marin"
            speech = tone(1.0)
            for start in range(0, len(speech), 9600):
                await conn.input_audio_buffer.append(audio=b64(speech[start:start + 9600]))
            await conn.input_audio_buffer.commit()
            events = await until(conn, "conversation.item.input_audio_transcription.completed")
            assert [e.type for e in events] == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
                                                "conversation.item.input_audio_transcription.delta", "conversation.item.input_audio_transcription.completed"]
            assert events[0].item_id == events[1].item.id == events[4].item_id
            assert events[1].item.content[0].type == "input_audio" and events[4].transcript.strip()
            await conn.response.create()
            events = await until(conn, "response.done")
            kinds = squeeze([e.type for e in events])
            assert kinds == ["response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added",
                             "response.output_audio_transcript.delta", "response.output_audio.delta", "response.output_audio.done",
                             "response.output_audio_transcript.done", "response.content_part.done", "response.output_item.done",
                             "conversation.item.done", "response.done"]
            pcm = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
            assert len(pcm) > 24000 and len(pcm) % 2 == 0  # PCM16 at 24 kHz: a sentence is well over half a second
            assert np.abs(np.frombuffer(pcm, dtype="<i2")).max() > 0
            transcript = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
            final = events[-1].response
            assert final.output[0].content[0].type == "output_audio" and final.output[0].content[0].transcript == transcript
            assert final.usage.input_token_details.audio_tokens >= 10 and final.usage.output_token_details.audio_tokens > 0
            # The client stops playback half a second in: the item is cut there.
            await conn.conversation.item.truncate(item_id=final.output[0].id, content_index=0, audio_end_ms=500)
            truncated = await conn.recv()
            assert truncated.type == "conversation.item.truncated" and truncated.audio_end_ms == 500
            # Less than 100 ms is not a turn.
            await conn.input_audio_buffer.append(audio=b64(tone(0.05)))
            await conn.input_audio_buffer.commit()
            error = await conn.recv()
            assert error.type == "error" and error.error.code == "input_audio_buffer_commit_empty"
            await conn.input_audio_buffer.clear()
            assert (await conn.recv()).type == "input_audio_buffer.cleared"
    run(main())


def test_server_vad_commits_and_answers(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            created = await conn.recv()
            assert created.session.audio.input.turn_detection.type == "server_vad"  # OpenAI's default
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await conn.recv()
            await conn.input_audio_buffer.append(audio=b64(tone(0.3, loud=False) + tone(0.8) + tone(0.8, loud=False)))
            events = await until(conn, "response.done")
            kinds = [e.type for e in events]
            assert kinds[:5] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
                                 "conversation.item.added", "conversation.item.done"]
            assert events[0].item_id == events[2].item_id and 0 <= events[0].audio_start_ms < events[1].audio_end_ms
            assert events[-1].response.status == "completed"
    run(main())


WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_function_call_round_trip(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER], "tool_choice": "required"})
            assert (await conn.recv()).session.tools[0].name == "get_weather"
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]})
            await until(conn, "conversation.item.done")
            await conn.response.create()
            events = await until(conn, "response.done")
            assert squeeze([e.type for e in events]) == [
                "response.created", "response.output_item.added", "conversation.item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "conversation.item.done", "response.done"]
            done = next(e for e in events if e.type == "response.function_call_arguments.done")
            assert done.name == "get_weather" and isinstance(json.loads(done.arguments)["city"], str)
            call = events[-1].response.output[0]
            assert call.type == "function_call" and call.call_id == done.call_id and call.arguments == done.arguments
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id, "output": '{"forecast": "sunny"}'})
            await until(conn, "conversation.item.done")
            await conn.response.create(response={"tool_choice": "none"})
            events = await until(conn, "response.done")
            assert events[-1].response.output[0].type == "message" and events[-1].response.output[0].content[0].text
    run(main())


def test_scripted_rules_answer_realtime_and_out_of_band_responses(server):
    key = new_key()
    add_rule(server, key, {"when": {"endpoint": "realtime", "user_contains": "weather"}, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "times": 1})
    add_rule(server, key, {"when": {"endpoint": "realtime", "tool_result": "get_weather"}, "reply": {"text": ["It is ", "sunny."]}})

    async def main():
        async with sdk(server, key).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER]})
            await conn.recv()
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]})
            await conn.response.create()
            call = (await until(conn, "response.done"))[-1].response.output[0]
            assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
            await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
            await conn.response.create()
            events = await until(conn, "response.done")
            assert [e.delta for e in events if e.type == "response.output_text.delta"] == ["It is ", "sunny."]
            # conversation "none": answered out of band, nothing added to the conversation
            await conn.response.create(response={"conversation": "none", "input": [], "instructions": "Summarise", "metadata": {"topic": "x"}})
            events = await until(conn, "response.done")
            assert "conversation.item.added" not in [e.type for e in events]
            assert events[-1].response.conversation_id is None and events[-1].response.metadata == {"topic": "x"}
    run(main())


def test_errors_are_events_and_the_socket_stays_open(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            raw = conn._connection  # the SDK only sends well-formed events
            await raw.send("{not json")
            error = await conn.recv()
            assert error.type == "error" and error.error.type == "invalid_request_error" and error.error.code == "invalid_json"
            await raw.send(json.dumps({"type": "session.explode", "event_id": "evt_1"}))
            error = (await conn.recv()).error
            assert (error.code, error.param, error.event_id) == ("invalid_value", "type", "evt_1")
            assert "'session.update'" in error.message
            await conn.send({"type": "conversation.item.delete", "item_id": "item_nope", "event_id": "evt_2"})
            error = (await conn.recv()).error
            assert (error.code, error.event_id) == ("item_delete_invalid_item_id", "evt_2") and "item_nope" in error.message
            await conn.response.cancel()
            assert (await conn.recv()).error.code == "response_cancel_not_active"
            await raw.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {"output": {"voice": "nobody"}}}}))
            error = (await conn.recv()).error
            assert (error.code, error.param) == ("invalid_value", "session.audio.output.voice")
            await raw.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": 5}}))
            error = (await conn.recv()).error
            assert (error.code, error.param) == ("invalid_type", "session.instructions") and "'session.instructions'" in error.message
            await raw.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime-mini"}}))
            assert (await conn.recv()).error.param == "session.model"
            await raw.send(json.dumps({"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}}))
            assert (await conn.recv()).error.param == "item.role"
            await raw.send(json.dumps({"type": "conversation.item.create", "item": {"type": "reasoning", "content": []}}))
            assert (await conn.recv()).error.param == "item.type"
            await raw.send(json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}))
            assert (await conn.recv()).error.param == "audio"
            # Still open, and what was refused changed nothing.
            await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
            updated = await conn.recv()
            assert updated.type == "session.updated" and updated.session.instructions == "Be brief." and updated.session.audio.output.voice == "alloy"
    run(main())


def test_cancel_and_a_second_response_while_one_runs(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("slow"), {"UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS": "50"})
    try:
        async def main():
            async with sdk(srv, new_key()).realtime.connect(model=MODEL) as conn:
                await conn.recv()
                await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                await conn.recv()
                await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Tell a long story"}]})
                await until(conn, "conversation.item.done")
                await conn.response.create()
                await until(conn, "response.output_text.delta")
                await conn.response.create()
                assert (await until(conn, "error"))[-1].error.code == "conversation_already_has_active_response"
                await conn.response.cancel()
                events = await until(conn, "response.done")
                final = events[-1].response
                assert final.status == "cancelled" and final.status_details.reason == "client_cancelled"
                assert final.output[0].status == "incomplete"
        run(main())
    finally:
        srv.stop()


def test_client_secrets_open_a_socket_for_their_tenant_only(server):
    key = new_key()
    add_rule(server, key, {"when": {"endpoint": "realtime"}, "reply": {"text": "only for the maker"}})
    maker = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    secret = maker.realtime.client_secrets.create(session={"type": "realtime", "model": MODEL, "instructions": "Be a pirate.", "output_modalities": ["text"]},
                                                  expires_after={"anchor": "created_at", "seconds": 10})
    assert secret.value.startswith("ek_") and 9 <= secret.expires_at - time.time() <= 11
    assert secret.session.instructions == "Be a pirate." and secret.session.model == MODEL

    async def main():
        async with sdk(server, secret.value).realtime.connect(model=MODEL) as conn:
            created = await conn.recv()
            assert created.session.instructions == "Be a pirate." and created.session.output_modalities == ["text"]
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1].response.output[0].content[0].text == "only for the maker"  # the maker's rules: the maker's tenant

    run(main())
    # A browser passes the secret as a subprotocol.
    async def browser():
        url = server.url.replace("http", "ws") + f"/v1/realtime?model={MODEL}"
        async with websockets.connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{secret.value}"]) as ws:
            assert ws.subprotocol == "realtime"
            assert json.loads(await ws.recv())["type"] == "session.created"
    run(browser())
    # Not an API key for anything else.
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret.value, max_retries=0).models.list()
    # Unknown, then expired: refused at the handshake with OpenAI's 401 body.
    for value in ("ek_" + "x" * 32, secret.value):
        if value == secret.value:
            time.sleep(max(0.0, secret.expires_at - time.time()) + 0.5)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            run(sdk(server, value).realtime.connect(model=MODEL).enter())
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_api_key"


def test_client_secret_parameters_are_checked(client):
    with pytest.raises(openai.BadRequestError) as bad:
        client.realtime.client_secrets.create(expires_after={"anchor": "created_at", "seconds": 5})
    assert bad.value.body["param"] == "expires_after.seconds"
    with pytest.raises(openai.NotFoundError):
        client.realtime.client_secrets.create(session={"type": "realtime", "model": "no-such-model"})
    with pytest.raises(openai.BadRequestError) as bad:
        client.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-4o-mini"})
    assert bad.value.body["param"] == "model"
    default = client.realtime.client_secrets.create()
    assert default.session.model == MODEL and default.expires_at - time.time() > 590


def test_handshake_refusals(server):
    url = server.url.replace("http", "ws") + "/v1/realtime"
    cases = [(f"{url}?model={MODEL}", {}, 401), (f"{url}?model={MODEL}", {"Authorization": "Bearer nope"}, 401),
             (url, {"Authorization": f"Bearer {new_key()}"}, 400), (f"{url}?model=gpt-4o-mini", {"Authorization": f"Bearer {new_key()}"}, 400),
             (f"{url}?model=no-such-model", {"Authorization": f"Bearer {new_key()}"}, 404),
             (f"{url}?call_id=rtc_123", {"Authorization": f"Bearer {new_key()}"}, 404)]

    async def refused(target, headers):
        with pytest.raises(websockets.exceptions.InvalidStatus) as error:
            async with websockets.connect(target, additional_headers=headers):
                pass
        return error.value.response

    for target, headers, status in cases:
        response = run(refused(target, headers))
        assert response.status_code == status, (target, response.body)
        assert set(json.loads(response.body)["error"]) == {"message", "type", "param", "code"}


def test_calls_endpoints_say_there_is_no_telephony(client, http):
    with pytest.raises(openai.BadRequestError) as bad:
        client.realtime.calls.create(sdp="v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
    assert bad.value.code == "unsupported_realtime_call" and "WebSocket" in bad.value.message
    for call in (lambda: client.realtime.calls.accept("rtc_1", type="realtime", model=MODEL), lambda: client.realtime.calls.hangup("rtc_1"),
                 lambda: client.realtime.calls.refer("rtc_1", target_uri="tel:+14155550123"), lambda: client.realtime.calls.reject("rtc_1", status_code=486)):
        with pytest.raises(openai.BadRequestError) as bad:
            call()
        assert bad.value.code == "unsupported_realtime_call"
    response = http.post("/realtime/calls/rtc_1/refer", json={})
    assert response.status_code == 400 and response.json()["error"]["param"] == "target_uri"
    assert http.get("/models").status_code == 200  # the same connection, still usable


@pytest.fixture(scope="module")
def tight(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("tight"), {
        "UNDERSTUDY_REALTIME_MAX_MESSAGE_BYTES": "65536", "UNDERSTUDY_REALTIME_MAX_AUDIO_BYTES": "48000",
        "UNDERSTUDY_REALTIME_MAX_ITEMS": "3", "UNDERSTUDY_REALTIME_IDLE_SECONDS": "2", "UNDERSTUDY_REALTIME_MAX_SESSIONS": "2",
        "UNDERSTUDY_RATE_LIMIT_RPM": "2"})
    yield srv
    srv.stop()


def test_limits_on_audio_items_messages_idle_time_and_sessions(tight):
    key = new_key()

    async def main():
        async with sdk(tight, key).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
            await conn.recv()
            await conn.input_audio_buffer.append(audio=b64(tone(0.9)))  # 43,200 bytes: fits
            await conn.input_audio_buffer.append(audio=b64(tone(0.2)))
            assert (await conn.recv()).error.code == "input_audio_buffer_too_large"
            for n in range(3):
                await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"{n}"}]})
                await until(conn, "conversation.item.done")
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one too many"}]})
            assert (await conn.recv()).error.code == "conversation_too_many_items"
            # Two sessions per tenant in this process: a third is refused, others' tenants are not.
            async with sdk(tight, key).realtime.connect(model=MODEL) as second:
                await second.recv()
                with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
                    await sdk(tight, key).realtime.connect(model=MODEL).enter()
                assert refused.value.response.status_code == 429
                async with sdk(tight, new_key()).realtime.connect(model=MODEL) as other:
                    assert (await other.recv()).type == "session.created"
            # An idle socket is told why, then closed.
            started = time.monotonic()
            error = await conn.recv()
            assert error.error.code == "session_idle_timeout" and 1.5 < time.monotonic() - started < 5
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await conn._connection.recv()

        async with sdk(tight, key).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await conn._connection.send(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 70000}))
                await conn._connection.recv()
            assert closed.value.rcvd.code == 1009  # message too big
    run(main())


def test_responses_take_from_the_projects_rate_limits(tight):
    async def main():
        async with sdk(tight, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
            await conn.recv()
            for remaining in (1, 0):
                await conn.response.create()
                events = await until(conn, "response.done")
                assert [e.type for e in events][:2] == ["response.created", "rate_limits.updated"]
                requests = events[1].rate_limits[0]
                assert (requests.name, requests.limit, requests.remaining) == ("requests", 2, remaining)
            await conn.response.create()
            error = (await conn.recv()).error
            assert (error.type, error.code) == ("requests", "rate_limit_exceeded") and "Limit 2" in error.message
    run(main())


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_client_secret_stores(kind):
    from app.services.realtime.secrets import ClientSecrets, MemorySecrets, RedisSecrets
    from tests.support.redis_db import claim_redis_db

    async def check(store):
        secrets = ClientSecrets(store)
        value, expires_at = await secrets.create("tenant_a", "key_1", {"model": MODEL}, {"anchor": "created_at", "seconds": 10})
        grant = await secrets.redeem(value)
        assert (grant.tenant, grant.key_id, grant.session, grant.expires_at) == ("tenant_a", "key_1", {"model": MODEL}, expires_at)
        for wrong in (value[:-1] + ("A" if value[-1] != "A" else "B"), "sk-" + value[3:], ""):
            with pytest.raises(Exception) as refused:
                await secrets.redeem(wrong)
            assert refused.value.status_code == 401
        await store.close()

    if kind == "memory":
        asyncio.run(check(MemorySecrets()))
        return
    with claim_redis_db() as url:
        asyncio.run(check(RedisSecrets(url)))


def test_team_mode_a_secret_made_by_one_api_process_opens_a_socket_on_another(tmp_path_factory):
    from tests.support.redis_db import claim_redis_db

    with claim_redis_db() as url:
        one = start_server(tmp_path_factory.mktemp("one"), {"UNDERSTUDY_REDIS_URL": url})
        two = start_server(tmp_path_factory.mktemp("two"), {"UNDERSTUDY_REDIS_URL": url})
        try:
            secret = openai.OpenAI(base_url=f"{one.url}/v1", api_key=new_key(), max_retries=0).realtime.client_secrets.create(
                session={"type": "realtime", "instructions": "From process one."})

            async def main():
                async with sdk(two, secret.value).realtime.connect(model=MODEL) as conn:
                    assert (await conn.recv()).session.instructions == "From process one."
            run(main())
        finally:
            one.stop()
            two.stop()


def test_agents_sdk_realtime_agent_runs_a_tool(server):
    from agents import function_tool
    from agents.realtime import RealtimeAgent, RealtimeRunner

    key = new_key()
    add_rule(server, key, {"when": {"endpoint": "realtime", "user_contains": "weather"}, "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, "times": 1})
    add_rule(server, key, {"when": {"endpoint": "realtime", "tool_result": "get_weather"}, "reply": {"text": "It is sunny in Oslo."}})
    asked = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny in {city}"

    agent = RealtimeAgent(name="Forecaster", instructions="Answer with the weather tool.", tools=[get_weather])

    async def main():
        runner = RealtimeRunner(agent)
        session = await runner.run(model_config={"url": server.url.replace("http", "ws") + f"/v1/realtime?model={MODEL}", "api_key": key,
                                                 "initial_model_settings": {"model_name": MODEL, "modalities": ["audio"]}})
        tool_ended, transcripts, audio_bytes = [], [], 0
        async with session:
            await session.send_message("What's the weather in Oslo?")
            async for event in session:
                if event.type == "tool_end":
                    tool_ended.append(event.output)
                elif event.type == "audio":
                    audio_bytes += len(event.audio.data)
                elif event.type == "raw_model_event" and event.data.type == "raw_server_event":
                    if event.data.data.get("type") == "response.output_audio_transcript.done":
                        transcripts.append(event.data.data["transcript"])
                elif event.type == "error":
                    raise AssertionError(event.error)
                if transcripts and tool_ended:
                    break
        return tool_ended, transcripts, audio_bytes

    tool_ended, transcripts, audio_bytes = run(main())
    assert asked == ["Oslo"] and tool_ended == ["sunny in Oslo"]
    assert transcripts == ["It is sunny in Oslo."] and audio_bytes > 0


VALID_EVENTS = [
    {"type": "session.update", "session": {"type": "realtime", "instructions": "x", "output_modalities": ["text"], "tools": [WEATHER],
                                           "tool_choice": "auto", "max_output_tokens": 100,
                                           "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
                                                               "transcription": {"model": "whisper-1"}},
                                                     "output": {"voice": "alloy", "speed": 1.0, "format": {"type": "audio/pcmu"}}}}},
    {"type": "conversation.item.create", "previous_item_id": None, "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}},
    {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"}},
    {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 10},
    {"type": "input_audio_buffer.append", "audio": "AAAA"},
    {"type": "response.create", "response": {"conversation": "none", "output_modalities": ["text"], "input": [{"type": "item_reference", "id": "item_1"}],
                                             "max_output_tokens": 5, "metadata": {"k": "v"}, "tool_choice": "none"}},
]
MUTANTS = [None, 0, -1, 10**30, 1.5, True, "", "x" * 300, [], [1, "a"], {}, {"type": "nonsense"}, json.loads("[" * 500 + "]" * 500)]


def _mutations(value, path=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            if path == () and key == "type":
                continue
            for mutant in MUTANTS:
                yield (*path, key), mutant
            yield from _mutations(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _mutations(inner, (*path, index))


def _mutated(event, path, mutant):
    event = json.loads(json.dumps(event))
    target = event
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = mutant
    return event


def test_type_mutated_events_are_error_events_never_server_errors(server):
    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            raw, sent = conn._connection, 0
            for event in VALID_EVENTS:
                for path, mutant in _mutations(event):
                    await raw.send(json.dumps(_mutated(event, path, mutant)))
                    marker = f"probe_{sent}"
                    sent += 1
                    await raw.send(json.dumps({"type": "conversation.item.retrieve", "item_id": "item_nope", "event_id": marker}))
                    async for answer in conn:  # what the mutant caused, then the probe's error: the socket is alive
                        if answer.type == "error":
                            assert answer.error.type != "server_error", (path, mutant, answer.error)
                            if answer.error.event_id == marker:
                                break
            assert sent > 200
    run(main())
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_keys_mode_secrets_carry_the_issued_key_into_usage(tmp_path_factory):
    from tests.test_keys import ADMIN_KEY, keys_env

    srv = start_server(tmp_path_factory.mktemp("keys"), keys_env())
    try:
        with httpx.Client(base_url=f"{srv.url}/v1/organization", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin:
            project = admin.post("/projects", json={"name": "voice"}).json()
            issued = admin.post(f"/projects/{project['id']}/api_keys", json={"name": "browser-minter"}).json()
            maker = openai.OpenAI(base_url=f"{srv.url}/v1", api_key=issued["value"], max_retries=0)
            secret = maker.realtime.client_secrets.create(session={"type": "realtime", "output_modalities": ["text"]})
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=f"{srv.url}/v1", api_key=secret.value, max_retries=0).files.list()

            async def main():
                for key in (secret.value, issued["value"]):
                    async with sdk(srv, key).realtime.connect(model=MODEL) as conn:
                        await conn.recv()
                        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
                        await conn.recv()
                        await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
                        await conn.response.create()
                        assert (await until(conn, "response.done"))[-1].response.status == "completed"
            run(main())
            deadline = time.monotonic() + 15
            while True:  # usage is written about once a second
                body = admin.get("/usage/completions", params={"start_time": int(time.time()) - 3600, "project_ids": project["id"],
                                                                "group_by": ["api_key_id"]}).json()
                found = {r["api_key_id"]: r["num_model_requests"] for b in body["data"] for r in b["results"]}
                if found or time.monotonic() > deadline:
                    if found.get(issued["id"]) == 2 or time.monotonic() > deadline:
                        break
                time.sleep(0.25)
            assert found == {issued["id"]: 2}
    finally:
        srv.stop()


def test_g711_audio_and_audio_items(server):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    narrow, _ = audioop.ratecv(tone(1.0), 2, 1, 24000, 8000, None)
    ulaw = audioop.lin2ulaw(narrow, 2)  # one second: 8,000 bytes

    async def main():
        async with sdk(server, new_key()).realtime.connect(model=MODEL) as conn:
            await conn.recv()
            await conn.session.update(session={"type": "realtime", "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": None, "transcription": {"model": "whisper-1"}},
                "output": {"format": {"type": "audio/pcma"}}}})
            updated = (await conn.recv()).session
            assert (updated.audio.input.format.type, updated.audio.output.format.type) == ("audio/pcmu", "audio/pcma")
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": b64(ulaw)}]})
            events = await until(conn, "conversation.item.input_audio_transcription.completed")
            assert [e.type for e in events] == ["conversation.item.added", "conversation.item.done", "conversation.item.input_audio_transcription.completed"]
            assert events[-1].transcript and events[-1].usage.type == "duration" and events[-1].usage.seconds == pytest.approx(1.0, abs=0.01)
            assert getattr(events[0].item.content[0], "audio", None) is None  # events carry no audio back
            await conn.conversation.item.retrieve(item_id=events[0].item.id)
            assert base64.b64decode((await conn.recv()).item.content[0].audio) == ulaw
            await conn.response.create()
            events = await until(conn, "response.done")
            alaw = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
            transcript = events[-1].response.output[0].content[0].transcript
            assert len(alaw) == pytest.approx(8000 * max(0.3, len(transcript) / 15), rel=0.05)  # 8 kHz, a byte a sample
    run(main())


def test_beta_sessions_give_a_secret_for_the_ga_socket(server):
    key = new_key()
    add_rule(server, key, {"when": {"endpoint": "realtime"}, "reply": {"text": "beta secret works"}})
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    raw = client.beta.realtime.sessions.with_raw_response.create(
        model=MODEL, modalities=["text"], instructions="Be brief.", voice="verse", input_audio_format="g711_ulaw",
        turn_detection={"type": "server_vad", "silence_duration_ms": 700}, client_secret={"expires_after": {"anchor": "created_at", "seconds": 60}})
    assert_matches_schema(raw.http_response.json(), "RealtimeSessionCreateResponse")
    made = raw.parse()
    assert made.client_secret.value.startswith("ek_") and 58 <= made.client_secret.expires_at - time.time() <= 61
    assert (made.modalities, made.voice, made.input_audio_format, made.output_audio_format) == (["text"], "verse", "g711_ulaw", "pcm16")
    assert made.turn_detection.silence_duration_ms == 700 and made.instructions == "Be brief."

    async def main():
        async with sdk(server, made.client_secret.value).realtime.connect(model=MODEL) as conn:
            created = await conn.recv()
            session = created.session
            assert session.output_modalities == ["text"] and session.instructions == "Be brief."
            assert session.audio.input.format.type == "audio/pcmu" and session.audio.output.voice == "verse"
            await conn.conversation.item.create(item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]})
            await conn.response.create()
            events = await until(conn, "response.done")
            assert events[-1].response.output[0].content[0].text == "beta secret works"

    run(main())
    # Bad input is refused with the param named; a chat model is no Realtime model.
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.realtime.sessions.create(input_audio_format="mp3")
    assert bad.value.body["param"] == "input_audio_format"
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.realtime.sessions.create(model="gpt-4o-mini")
    assert bad.value.body["param"] == "model"


def test_transcription_and_translation_sessions_are_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as bad:
        client.beta.realtime.transcription_sessions.create(input_audio_format="pcm16")
    assert "not emulated" in bad.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.post("/realtime/translations/client_secrets", body={"session": {}}, cast_to=object)
    assert "not emulated" in bad.value.message
    assert client.models.list().data  # the connection goes on serving


def _server_event_schemas() -> dict[str, str]:
    """Each server event type the spec names, and the schema of its body."""
    schemas = spec_schemas()
    names = [ref["$ref"].rsplit("/", 1)[1] for ref in schemas["RealtimeServerEvent"]["anyOf"]]
    return {schemas[name]["properties"]["type"]["enum"][0]: name for name in names}


# Nulls OpenAI sends where the spec's schema types an object: its own examples of session.created and
# response.created show them, and an input_audio part's transcript is null until it is transcribed.
_DOCUMENTED_NULLS = {"session": [("include",), ("audio", "input", "transcription"), ("audio", "input", "noise_reduction")],
                     "response": [("status_details",), ("usage",)]}


def _without_documented_nulls(event: dict) -> dict:
    event = copy.deepcopy(event)
    for key, paths in _DOCUMENTED_NULLS.items():
        for *parents, name in paths:
            node = event.get(key)
            for parent in parents:
                node = node.get(parent) if isinstance(node, dict) else None
            if isinstance(node, dict) and node.get(name, "") is None:
                del node[name]
    for item in [event.get("item"), *((event.get("response") or {}).get("output") or [])]:
        for part in (item or {}).get("content") or []:
            if part.get("type") == "input_audio" and part.get("transcript", "") is None:
                del part["transcript"]
    return event


def test_every_server_event_matches_its_schema_in_the_spec(server):
    """A session through text, audio in and out, server VAD, a function call, edits and errors: every event
    the server sends validates against the spec's schema for its type."""
    schemas = _server_event_schemas()
    seen: list[dict] = []

    async def main():
        url = server.url.replace("http", "ws") + f"/v1/realtime?model={MODEL}"
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {new_key()}"}, max_size=None) as ws:
            async def send(event: dict) -> None:
                await ws.send(json.dumps(event))

            async def upto(kind: str) -> list[dict]:
                got = []
                while True:
                    event = json.loads(await ws.recv())
                    seen.append(event)
                    got.append(event)
                    if event["type"] == kind:
                        return got

            await upto("session.created")
            await send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER],
                                                              "audio": {"input": {"turn_detection": None, "transcription": {"model": "gpt-4o-mini-transcribe"}}}}})
            await upto("session.updated")
            await send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}})
            user = (await upto("conversation.item.done"))[-1]["item"]["id"]
            await send({"type": "response.create", "response": {"tool_choice": "none"}})
            answer = (await upto("response.done"))[-1]["response"]["output"][0]["id"]
            await send({"type": "conversation.item.retrieve", "item_id": answer})
            await upto("conversation.item.retrieved")
            await send({"type": "response.create", "response": {"tool_choice": "required"}})
            call = (await upto("response.done"))[-1]["response"]["output"][0]
            await send({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}})
            await upto("conversation.item.done")
            # Audio in, transcribed; an audio answer, cut short by the client.
            await send({"type": "input_audio_buffer.append", "audio": b64(tone(1.0))})
            await send({"type": "input_audio_buffer.commit"})
            await upto("conversation.item.input_audio_transcription.completed")
            await send({"type": "response.create", "response": {"output_modalities": ["audio"], "tool_choice": "none"}})
            spoken = (await upto("response.done"))[-1]["response"]["output"][0]["id"]
            await send({"type": "conversation.item.truncate", "item_id": spoken, "content_index": 0, "audio_end_ms": 300})
            await upto("conversation.item.truncated")
            await send({"type": "conversation.item.delete", "item_id": user})
            await upto("conversation.item.deleted")
            await send({"type": "input_audio_buffer.append", "audio": b64(tone(0.2))})
            await send({"type": "input_audio_buffer.clear"})
            await upto("input_audio_buffer.cleared")
            await send({"type": "response.cancel"})
            await upto("error")
            # Server VAD finds the turn in the audio and answers it.
            await send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}})
            await upto("session.updated")
            await send({"type": "input_audio_buffer.append", "audio": b64(tone(0.3, loud=False) + tone(0.8) + tone(0.8, loud=False))})
            await upto("response.done")

    run(main())
    kinds = {event["type"] for event in seen}
    expected = {"session.created", "session.updated", "conversation.item.added", "conversation.item.done", "conversation.item.retrieved",
                "conversation.item.truncated", "conversation.item.deleted", "conversation.item.input_audio_transcription.delta",
                "conversation.item.input_audio_transcription.completed", "input_audio_buffer.committed", "input_audio_buffer.cleared",
                "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "response.created", "response.done",
                "response.output_item.added", "response.output_item.done", "response.content_part.added", "response.content_part.done",
                "response.output_text.delta", "response.output_text.done", "response.output_audio.delta", "response.output_audio.done",
                "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
                "response.function_call_arguments.delta", "response.function_call_arguments.done", "error"}
    assert expected <= kinds, expected - kinds
    assert kinds <= set(schemas), kinds - set(schemas)
    for event in seen:
        assert_matches_schema(_without_documented_nulls(event), schemas[event["type"]])
