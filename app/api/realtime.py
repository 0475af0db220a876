"""/v1/realtime: the Realtime WebSocket, client secrets (`ek_…`) and the calls endpoints.

The socket authenticates itself (the /v1 auth middleware sees HTTP requests only): an `Authorization:
Bearer` header (an API key or a client secret) or, as browsers must, the subprotocol
`openai-insecure-api-key.<key>`. A refused handshake is an HTTP answer with OpenAI's error body (the
ASGI denial-response extension), so clients see a 401/400/404 rather than a socket that opens and dies.
The socket lives in this controller; what a session does is app/services/realtime/.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter

import msgspec
from litestar import Request, WebSocket, post, websocket
from litestar.exceptions import WebSocketDisconnect
from openai.types.realtime import call_refer_params, call_reject_params, client_secret_create_params

from app.api.deps import caller
from app.core.auth import key_from_headers
from app.core.caller import calling_key
from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.validation import decode_json_object, validate_params
from app.services.realtime.config import apply_update, default_session
from app.services.realtime.secrets import PREFIX
from app.services.realtime.session import Limits, RealtimeSession

log = logging.getLogger("understudy.realtime")
_INSECURE = "openai-insecure-api-key."
_open_sessions: Counter[str] = Counter()  # tenant -> sessions open in this process
_encode = msgspec.json.Encoder().encode


def realtime_model(platform, tenant: str, model: str | None) -> str:
    if not model:
        raise invalid_request("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    found = platform.models.get(tenant, model)  # 404 model_not_found
    if found["kind"] != "realtime":
        raise invalid_request(f"Invalid model: '{model}' is not a Realtime model (e.g. 'gpt-realtime').", param="model", code="invalid_model")
    return model


async def _authenticate(platform, scope) -> tuple[str, str, dict | None]:
    """(tenant, issued key id, the client secret's session or None)."""
    authorization = api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
    if authorization is None and api_key is None:
        api_key = next((p[len(_INSECURE):] for p in scope.get("subprotocols") or () if p.startswith(_INSECURE)), None)
    key = key_from_headers(authorization, api_key)
    if key.startswith(PREFIX):
        grant = await platform.realtime_secrets.redeem(key)
        return grant.tenant, grant.key_id, grant.session
    tenant = await platform.auth.tenant_for_key(key)
    return tenant, platform.auth.key_id(key) if platform.auth.mode == "keys" else "", None


async def _accept(socket: WebSocket, subprotocol: str | None) -> None:
    await socket.send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})


async def _deny(socket: WebSocket, error: APIError) -> None:
    body = _encode(error.body())
    if "websocket.http.response" in (socket.scope.get("extensions") or {}):
        await socket.send({"type": "websocket.http.response.start", "status": error.status_code,
                           "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await socket.send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await _accept(socket, None)  # a server without the extension: the error as the only event
    await socket.send_data(_encode({"type": "error", "event_id": new_id("event_"), "error": {**error.body()["error"], "event_id": None}}).decode())
    await socket.close(code=1008)


@websocket("/realtime")
async def realtime_socket(socket: WebSocket) -> None:
    platform = socket.app.state.platform
    settings = platform.settings
    await socket.receive()  # websocket.connect (after it, Litestar's `accept()` would do nothing: see _accept)
    try:
        tenant, key_id, granted = await _authenticate(platform, socket.scope)
        call_id = socket.query_params.get("call_id")
        if call_id is not None:
            raise APIError(f"No such call: '{call_id[:100]}'. This server emulates no WebRTC or SIP calls; connect with ?model= instead.",
                           status_code=404, param="call_id", code="call_not_found")
        model = realtime_model(platform, tenant, socket.query_params.get("model") or (granted or {}).get("model"))
        if _open_sessions[tenant] >= settings.realtime_max_sessions:
            raise APIError(f"Too many Realtime sessions open for this project ({settings.realtime_max_sessions}); close one first.",
                           status_code=429, type="requests", code="too_many_sessions")
    except APIError as error:
        await _deny(socket, error)
        return
    session_config = default_session(model, settings.realtime_max_session_seconds)
    if granted is not None:
        session_config = {**granted, "id": session_config["id"], "model": model, "expires_at": session_config["expires_at"]}
    offered = socket.scope.get("subprotocols") or ()
    await _accept(socket, "realtime" if "realtime" in offered else None)
    if key_id:
        calling_key.set(key_id)  # usage per issued key, as for an HTTP request
    _open_sessions[tenant] += 1
    try:
        await _serve(socket, platform, tenant, session_config)
    finally:
        _open_sessions[tenant] -= 1
        if _open_sessions[tenant] <= 0:
            del _open_sessions[tenant]


async def _serve(socket: WebSocket, platform, tenant: str, session_config: dict) -> None:
    settings = platform.settings
    lock = asyncio.Lock()
    gone = False

    async def send(event: dict) -> None:
        nonlocal gone
        if gone:
            return
        data = _encode(event).decode()
        async with lock:
            try:
                await socket.send_data(data)
            except (WebSocketDisconnect, OSError, RuntimeError):  # the client left mid-response
                gone = True

    limits = Limits(settings.realtime_max_audio_bytes, settings.realtime_max_items, settings.realtime_max_conversation_bytes)
    session = RealtimeSession(tenant, session_config, send, limits, platform.realtime)
    loop = asyncio.get_running_loop()
    ends = loop.time() + settings.realtime_max_session_seconds
    await session.start()
    try:
        while not gone:
            left = ends - loop.time()
            try:
                message = await asyncio.wait_for(socket.receive(), min(settings.realtime_idle_seconds, max(left, 0)))
            except (asyncio.TimeoutError, TimeoutError):
                expired = loop.time() >= ends
                minutes = settings.realtime_max_session_seconds / 60
                what = (f"Your session hit the maximum duration of {minutes:g} minutes." if expired
                        else f"The session was idle for {settings.realtime_idle_seconds:g} seconds and was closed.")
                await session.error(invalid_request(what, code="session_expired" if expired else "session_idle_timeout"))
                await socket.close(code=1000, reason="session expired" if expired else "idle")
                return
            except WebSocketDisconnect:
                return
            if message["type"] != "websocket.receive":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            if len(raw) > settings.realtime_max_message_bytes:
                await session.error(invalid_request(f"The event is larger than this server's limit of {settings.realtime_max_message_bytes} bytes.",
                                                    code="event_too_large"))
                continue
            await session.handle(raw)
    finally:
        await session.close()


# -- client secrets ------------------------------------------------------------------------------------
@post("/realtime/client_secrets", status_code=200)
async def create_client_secret(request: Request) -> dict:
    platform, tenant = caller(request)
    body = validate_params(client_secret_create_params.ClientSecretCreateParams, decode_json_object(await request.body()))
    wanted = body.get("session") or {"type": "realtime"}
    if wanted.get("type") == "transcription":
        raise invalid_request("Transcription sessions are not emulated by this server; use a 'realtime' session.", param="session.type",
                              code="invalid_value")
    model = realtime_model(platform, tenant, wanted.get("model") or "gpt-realtime")
    session = apply_update(default_session(model, platform.settings.realtime_max_session_seconds), {**wanted, "model": model})
    value, expires_at = await platform.realtime_secrets.create(tenant, calling_key.get(), session, body.get("expires_after"))
    return {"value": value, "expires_at": expires_at, "session": session}


# -- calls (WebRTC and SIP) ----------------------------------------------------------------------------
def _no_calls(what: str) -> APIError:
    return invalid_request(f"{what} is not supported by this server: it emulates no WebRTC or SIP telephony. Open a Realtime session over "
                           "the WebSocket instead (GET /v1/realtime?model=gpt-realtime, or `client.realtime.connect()`).",
                           code="unsupported_realtime_call")


@post("/realtime/calls", status_code=201)
async def create_call(request: Request) -> None:
    caller(request)
    await request.body()  # read whole before answering, so the connection can be reused
    raise _no_calls("Creating a WebRTC call (an SDP offer)")


@post("/realtime/calls/{call_id:str}/accept", status_code=200)
async def accept_call(request: Request, call_id: str) -> None:
    platform, tenant = caller(request)
    body = decode_json_object(await request.body())
    apply_update(default_session(realtime_model(platform, tenant, body.get("model") or "gpt-realtime"), 60), body, param="session")
    raise _no_calls("Accepting a SIP call")


@post("/realtime/calls/{call_id:str}/hangup", status_code=200)
async def hangup_call(request: Request, call_id: str) -> None:
    caller(request)
    await request.body()
    raise _no_calls("Hanging up a WebRTC or SIP call")


@post("/realtime/calls/{call_id:str}/refer", status_code=200)
async def refer_call(request: Request, call_id: str) -> None:
    caller(request)
    validate_params(call_refer_params.CallReferParams, decode_json_object(await request.body()))
    raise _no_calls("Transferring a SIP call")


@post("/realtime/calls/{call_id:str}/reject", status_code=200)
async def reject_call(request: Request, call_id: str) -> None:
    caller(request)
    raw = await request.body()
    if raw.strip():
        validate_params(call_reject_params.CallRejectParams, decode_json_object(raw))
    raise _no_calls("Rejecting a SIP call")


REALTIME_HANDLERS = [realtime_socket, create_client_secret, create_call, accept_call, hangup_call, refer_call, reject_call]
