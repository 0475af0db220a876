"""A Realtime session's configuration (GA shape: `type: realtime`, `audio.input`/`audio.output`), what
session.update may change in it, and what a response.create may override for one response.

Requests are checked against the SDK's own param types (app/core/validation.py), then against the rules
OpenAI adds on top (one output modality, known voices and formats, a model that cannot change).
"""
from __future__ import annotations

import time

from openai.types.realtime.realtime_response_create_params_param import RealtimeResponseCreateParamsParam
from openai.types.realtime.realtime_session_create_request_param import RealtimeSessionCreateRequestParam

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.validation import validate_params
from app.services.audio import VOICES

DEFAULT_INSTRUCTIONS = ("Your knowledge cutoff is 2023-10. You are a helpful, witty, and friendly AI. Act like a human, but remember "
                        "that you aren't a human and that you can't do human things in the real world.")
FORMATS = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
              "idle_timeout_ms": None, "create_response": True, "interrupt_response": True}
SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True}
MAX_OUTPUT_TOKENS = 4096


def default_session(model: str, session_seconds: float) -> dict:
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess_"), "model": model,
        "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS, "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf", "tracing": None, "truncation": "auto", "prompt": None,
        "expires_at": int(time.time() + session_seconds),
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None, "noise_reduction": None,
                      "turn_detection": dict(SERVER_VAD)},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
        "include": None,
    }


def checked(params_type, body: dict, root: str) -> dict:
    """`validate_params`, its 400 naming the field from the event's root (`session.tools[0].name`)."""
    try:
        return validate_params(params_type, body)
    except APIError as error:
        if error.param:
            error.message = error.message.replace(f"'{error.param}'", f"'{root}.{error.param}'", 1)
            error.param = f"{root}.{error.param}"
        raise


def _bad(message: str, param: str, code: str = "invalid_value"):
    return invalid_request(message, param=param, code=code)


def _modalities(value, param: str) -> list[str]:
    if len(value) != 1:
        raise _bad(f"Invalid '{param}': exactly one of 'text' or 'audio' is supported, got {len(value)}.", param)
    return list(value)


def _format(fmt: dict, param: str) -> dict:
    kind = fmt.get("type", "audio/pcm")
    if kind not in FORMATS:
        raise _bad(f"Invalid value: '{kind}'. Supported values are: 'audio/pcm', 'audio/pcmu', and 'audio/pcma'.", f"{param}.type")
    if kind == "audio/pcm" and fmt.get("rate", 24000) != 24000:
        raise _bad(f"Invalid value: {fmt.get('rate')}. Supported values are: 24000.", f"{param}.rate")
    return {"type": kind, "rate": FORMATS[kind]} if kind == "audio/pcm" else {"type": kind}


def _voice(voice, param: str) -> str:
    name = voice.get("id") if isinstance(voice, dict) else voice
    if not isinstance(voice, dict) and voice not in VOICES:
        supported = ", ".join(f"'{v}'" for v in VOICES)
        raise _bad(f"Invalid value: '{voice}'. Supported values are: {supported}.", param)
    return name


def _tools(tools: list, param: str) -> list[dict]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise _bad(f"Invalid value: '{tool.get('type')}'. Only 'function' tools are supported by this server.", f"{param}[{i}].type")
        if not tool.get("name"):
            raise _bad("Missing required parameter: 'name'.", f"{param}[{i}].name", "missing_required_parameter")
        if not isinstance(tool.get("parameters", {}), dict):
            raise _bad(f"Invalid 'tools[{i}].parameters': expected a JSON schema object.", f"{param}[{i}].parameters", "invalid_type")
        out.append({"type": "function", "name": tool["name"], "description": tool.get("description", ""),
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}}})
    return out


def _max_tokens(value, param: str):
    if value != "inf" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_TOKENS):
        raise _bad(f"Invalid '{param}': integer below minimum value or above maximum. Expected a value between 1 and {MAX_OUTPUT_TOKENS} "
                   f"or 'inf', but got {value!r} instead.", param, "integer_above_max_value")
    return value


def apply_update(current: dict, update: dict, *, param: str = "session") -> dict:
    """The session after `update` (a session.update's `session`, or a client secret's): 400s name the field."""
    if not isinstance(update, dict):
        raise _bad(f"Invalid type for '{param}': expected an object, but got {type(update).__name__} instead.", param, "invalid_type")
    if "type" not in update:
        raise _bad(f"Missing required parameter: '{param}.type'.", f"{param}.type", "missing_required_parameter")
    if update["type"] != "realtime":
        raise _bad(f"Invalid value: '{update['type']}'. Supported values are: 'realtime' (transcription sessions are not emulated).", f"{param}.type")
    checked(RealtimeSessionCreateRequestParam, update, param)
    # What this changes is copied; tool schemas and the like are shared, never walked (they may nest deep).
    session = {**current, "audio": {"input": dict(current["audio"]["input"]), "output": dict(current["audio"]["output"])}}
    if "model" in update and update["model"] != current["model"]:
        raise _bad("Cannot update a conversation's model.", f"{param}.model")
    for name in ("instructions", "tool_choice", "tracing", "truncation", "prompt", "include"):
        if name in update:
            session[name] = update[name]
    if "output_modalities" in update:
        session["output_modalities"] = _modalities(update["output_modalities"], f"{param}.output_modalities")
    if "tools" in update:
        session["tools"] = _tools(update["tools"], f"{param}.tools")
    if "max_output_tokens" in update:
        session["max_output_tokens"] = _max_tokens(update["max_output_tokens"], f"{param}.max_output_tokens")
    audio = update.get("audio") or {}
    inp, out = audio.get("input") or {}, audio.get("output") or {}
    if "format" in inp:
        session["audio"]["input"]["format"] = _format(inp["format"], f"{param}.audio.input.format")
    for name in ("transcription", "noise_reduction"):
        if name in inp:
            session["audio"]["input"][name] = inp[name]
    if "turn_detection" in inp:
        detection = inp["turn_detection"]
        if detection is not None:
            base = SEMANTIC_VAD if detection.get("type") == "semantic_vad" else SERVER_VAD
            detection = {**base, **detection}
        session["audio"]["input"]["turn_detection"] = detection
    if "format" in out:
        session["audio"]["output"]["format"] = _format(out["format"], f"{param}.audio.output.format")
    if "voice" in out:
        session["audio"]["output"]["voice"] = _voice(out["voice"], f"{param}.audio.output.voice")
    if "speed" in out:
        session["audio"]["output"]["speed"] = out["speed"]
    return session


def response_options(session: dict, params: dict | None) -> dict:
    """The settings one response uses: the session's, with a response.create's `response` on top."""
    params = params or {}
    if not isinstance(params, dict):
        raise _bad("Invalid type for 'response': expected an object.", "response", "invalid_type")
    checked(RealtimeResponseCreateParamsParam, params, "response")
    output = (params.get("audio") or {}).get("output") or {}
    conversation = params.get("conversation", "auto")
    return {
        "conversation": conversation,
        "instructions": params.get("instructions", session["instructions"]),
        "output_modalities": _modalities(params["output_modalities"], "response.output_modalities") if "output_modalities" in params else session["output_modalities"],
        "tools": _tools(params["tools"], "response.tools") if "tools" in params else session["tools"],
        "tool_choice": params.get("tool_choice", session["tool_choice"]),
        "max_output_tokens": _max_tokens(params["max_output_tokens"], "response.max_output_tokens") if "max_output_tokens" in params else session["max_output_tokens"],
        "metadata": params.get("metadata"),
        "input": params.get("input"),
        "format": _format(output["format"], "response.audio.output.format") if "format" in output else session["audio"]["output"]["format"],
        "voice": _voice(output["voice"], "response.audio.output.voice") if "voice" in output else session["audio"]["output"]["voice"],
        "speed": session["audio"]["output"].get("speed") or 1.0,
    }
