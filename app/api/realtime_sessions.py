"""The Realtime API's older ephemeral-key endpoints, next to `/v1/realtime/client_secrets`:
`POST /v1/realtime/sessions` (`client.beta.realtime.sessions.create`), `/v1/realtime/transcription_sessions`
and `/v1/realtime/translations/client_secrets`.

A beta session request (`modalities`, `pcm16`, a top-level `voice` and `turn_detection`) is translated
into the GA session the socket speaks, and the secret it answers with opens the same
`/v1/realtime` socket as a client secret does. Transcription-only and translation sessions are not
emulated, so those two endpoints answer a clear 400, as `client_secrets` does for a transcription session.
"""
from __future__ import annotations

from litestar import Request, post
from openai.types.beta.realtime import session_create_params

from app.api.deps import caller
from app.api.realtime import realtime_model
from app.core.caller import calling_key
from app.core.errors import invalid_request
from app.core.validation import decode_json_object, validate_params
from app.services.realtime.config import apply_update, default_session

_FORMATS = {"pcm16": {"type": "audio/pcm", "rate": 24000}, "g711_ulaw": {"type": "audio/pcmu"}, "g711_alaw": {"type": "audio/pcma"}}
_BETA_FORMATS = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}


def _as_ga(beta: dict) -> dict:
    """A beta session configuration as the GA session update it means."""
    ga: dict = {"type": "realtime"}
    for same in ("instructions", "tools", "tool_choice", "tracing", "truncation", "prompt"):
        if same in beta:
            ga[same] = beta[same]
    if "max_response_output_tokens" in beta:
        ga["max_output_tokens"] = beta["max_response_output_tokens"]
    if "modalities" in beta:  # beta lists ["text", "audio"] for a spoken answer; GA names one modality
        ga["output_modalities"] = ["audio"] if "audio" in beta["modalities"] else ["text"]
    audio_in: dict = {}
    if "input_audio_format" in beta:
        audio_in["format"] = _FORMATS[beta["input_audio_format"]]
    if "input_audio_transcription" in beta:
        audio_in["transcription"] = beta["input_audio_transcription"]
    if "input_audio_noise_reduction" in beta:
        audio_in["noise_reduction"] = beta["input_audio_noise_reduction"]
    if "turn_detection" in beta:
        audio_in["turn_detection"] = beta["turn_detection"]
    audio_out = {name: beta[key] for name, key in (("voice", "voice"), ("speed", "speed")) if key in beta}
    if "output_audio_format" in beta:
        audio_out["format"] = _FORMATS[beta["output_audio_format"]]
    if audio_in or audio_out:
        ga["audio"] = {**({"input": audio_in} if audio_in else {}), **({"output": audio_out} if audio_out else {})}
    return ga


def _as_beta(session: dict, secret: str, expires_at: int) -> dict:
    """The beta SessionCreateResponse: the session's settings in beta names, and its client secret."""
    audio_in, audio_out = session["audio"]["input"], session["audio"]["output"]
    beta = {
        "id": session["id"], "object": "realtime.session", "model": session["model"], "expires_at": session["expires_at"],
        "client_secret": {"value": secret, "expires_at": expires_at},
        "modalities": ["text", "audio"] if session["output_modalities"] == ["audio"] else ["text"],
        "instructions": session["instructions"], "voice": audio_out["voice"], "speed": audio_out.get("speed", 1.0),
        "input_audio_format": _BETA_FORMATS[audio_in["format"]["type"]],
        "output_audio_format": _BETA_FORMATS[audio_out["format"]["type"]],
        "input_audio_transcription": audio_in["transcription"], "turn_detection": audio_in["turn_detection"],
        "tools": session["tools"], "tool_choice": session["tool_choice"],
        "max_response_output_tokens": session["max_output_tokens"], "truncation": session["truncation"],
    }
    if session["tracing"] is not None:  # the spec has no null tracing: absent means off
        beta["tracing"] = session["tracing"]
    return beta


@post("/realtime/sessions", status_code=200)
async def create_beta_session(request: Request) -> dict:
    platform, tenant = caller(request)
    body = decode_json_object(await request.body())
    model = realtime_model(platform, tenant, body.pop("model", None) or "gpt-realtime")  # any Realtime model we serve, not the SDK's list
    body = validate_params(session_create_params.SessionCreateParams, body)
    session = apply_update(default_session(model, platform.settings.realtime_max_session_seconds), {**_as_ga(body), "model": model})
    expires_after = (body.get("client_secret") or {}).get("expires_after")
    value, expires_at = await platform.realtime_secrets.create(tenant, calling_key.get(), session, expires_after)
    return _as_beta(session, value, expires_at)


@post("/realtime/transcription_sessions", status_code=200)
async def create_transcription_session(request: Request) -> None:
    caller(request)
    await request.body()  # read whole before answering, so the connection can be reused
    raise invalid_request("Transcription sessions are not emulated by this server; use a 'realtime' session "
                          "(POST /v1/realtime/client_secrets) with 'audio.input.transcription' set.", param="type", code="invalid_value")


@post("/realtime/translations/client_secrets", status_code=200)
async def create_translation_secret(request: Request) -> None:
    caller(request)
    await request.body()
    raise invalid_request("Realtime translation sessions are not emulated by this server; use a 'realtime' session "
                          "(POST /v1/realtime/client_secrets).", param="session", code="invalid_value")


REALTIME_SESSION_HANDLERS = [create_beta_session, create_transcription_session, create_translation_secret]
