"""What a Realtime response does: the conversation becomes a streamed chat-completions call through the
inference service (so the router, upstream routes and scripted rules with `endpoint: realtime` apply),
and its chunks become Realtime's events in OpenAI's order. Audio output is the speech model's (offline
TTS unless routed upstream) rendering of the answer's text; audio input is heard through the
transcription model.
"""
from __future__ import annotations

import asyncio
import base64
import math
from typing import TYPE_CHECKING

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.inference.base import MediaFile
from app.services.rate_limits import estimate_tokens
from app.services.realtime import audio

if TYPE_CHECKING:
    from app.services.realtime.session import RealtimeSession

SPEECH_MODEL, TRANSCRIPTION_MODEL = "gpt-4o-mini-tts", "gpt-4o-mini-transcribe"


def _text_of(item: dict, heard: dict) -> str:
    parts = []
    for part in item.get("content") or []:
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(part.get("text") or "")
        elif kind in ("input_audio", "output_audio", "audio"):
            parts.append(part.get("transcript") or heard.get(item.get("id"), ""))
    return "\n".join(p for p in parts if p)


def chat_messages(items: list[dict], instructions: str | None, heard: dict) -> list[dict]:
    messages: list[dict] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            images = [{"type": "image_url", "image_url": {"url": p["image_url"]}} for p in item.get("content") or []
                      if p.get("type") == "input_image" and p.get("image_url")]
            text = _text_of(item, heard)
            content = [{"type": "text", "text": text}, *images] if images and item["role"] == "user" else text
            messages.append({"role": item["role"], "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id") or item["id"], "type": "function", "function": {"name": item["name"], "arguments": item.get("arguments") or ""}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item.get("output") or ""})
    return messages


def _tool_choice(choice):
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


class Responder:
    def __init__(self, inference, audio_service, rate_limits) -> None:
        self._inference = inference
        self._audio = audio_service
        self._rate_limits = rate_limits

    # -- hearing ---------------------------------------------------------------------------------------
    async def transcribe(self, s: "RealtimeSession", item: dict, data: bytes, fmt: str) -> None:
        """What the model hears of an audio item; with `audio.input.transcription` set, the client sees it too."""
        configured = s.session["audio"]["input"]["transcription"]
        params = {"model": (configured or {}).get("model") or TRANSCRIPTION_MODEL, "response_format": "json"}
        for name in ("language", "prompt"):
            if (configured or {}).get(name):
                params[name] = configured[name]
        try:
            answer = await self._audio.transcribe(s.tenant, params, MediaFile("file", "audio.wav", "audio/wav", audio.wav(data, fmt)))
            body = answer.body if answer.kind == "json" else {"text": str(answer.body)}
        except APIError as error:
            if configured:
                await s.emit({"type": "conversation.item.input_audio_transcription.failed", "item_id": item["id"], "content_index": 0,
                              "error": {"type": error.type, "code": error.code, "message": error.message, "param": error.param}})
            return
        text = body.get("text") or ""
        s.heard[item["id"]] = text
        if configured:
            item["content"][0]["transcript"] = text
            if params["model"] != "whisper-1":
                await s.emit({"type": "conversation.item.input_audio_transcription.delta", "item_id": item["id"], "content_index": 0, "delta": text})
            usage = body.get("usage") or {"type": "duration", "seconds": round(audio.seconds(len(data), fmt), 3)}
            await s.emit({"type": "conversation.item.input_audio_transcription.completed", "item_id": item["id"], "content_index": 0,
                          "transcript": text, "usage": usage})

    # -- admission -------------------------------------------------------------------------------------
    def prompt(self, s: "RealtimeSession", options: dict) -> dict:
        """The chat-completions request one response makes (400s for a bad `input`)."""
        items = s.items
        if options["input"] is not None:
            items = []
            for i, entry in enumerate(options["input"]):
                if entry.get("type") == "item_reference":
                    at = s.index(entry.get("id"))
                    if at < 0:
                        raise invalid_request(f"Item with id '{str(entry.get('id'))[:64]}' not found in the conversation.", param=f"response.input[{i}].id",
                                              code="invalid_value")
                    items.append(s.items[at])
                else:
                    items.append({"id": entry.get("id") or new_id("item_"), **entry})
        params = {"model": s.session["model"], "messages": chat_messages(items, options["instructions"], s.heard), "stream": True,
                  "stream_options": {"include_usage": True}}
        if options["tools"]:
            params["tools"] = [{"type": "function", "function": {"name": t["name"], "description": t["description"], "parameters": t["parameters"]}}
                               for t in options["tools"]]
            params["tool_choice"] = _tool_choice(options["tool_choice"])
        if isinstance(options["max_output_tokens"], int):
            params["max_completion_tokens"] = options["max_output_tokens"]
        return params

    async def admit(self, s: "RealtimeSession", params: dict) -> list[dict] | None:
        """Takes the response from the project's rate limits, as a POST would; the `rate_limits.updated`
        figures, or None when no limit applies. Refused: an APIError (429's body as an error event)."""
        limiter = self._rate_limits
        if not limiter.active:
            return None
        limits = limiter.limits_for(s.tenant, params["model"])
        if not limits.rpm and not limits.tpm:
            return None
        tokens = estimate_tokens("chat", params) if limits.tpm else 0
        decision = await limiter.take(s.tenant, limits, tokens)
        if decision is None:
            return None
        reset = round(decision.reset_ms / 1000, 3)
        if decision.allowed != 1:
            what = "requests" if decision.allowed == 0 else "tokens"
            limit, used = (limits.rpm, decision.requests) if what == "requests" else (limits.tpm, decision.tokens)
            raise APIError(f"Rate limit reached for {params['model']} in project {s.tenant} on {what} per min: Limit {limit}, Used {used}. "
                           f"Please try again in {reset}s.", status_code=429, type=what, code="rate_limit_exceeded")
        figures = []
        if limits.rpm:
            figures.append({"name": "requests", "limit": limits.rpm, "remaining": max(limits.rpm - decision.requests, 0), "reset_seconds": reset})
        if limits.tpm:
            figures.append({"name": "tokens", "limit": limits.tpm, "remaining": max(limits.tpm - decision.tokens, 0), "reset_seconds": reset})
        return figures

    def current_id(self, s: "RealtimeSession") -> str | None:
        return s.active["response"]["id"] if s.active else None

    async def cancel(self, s: "RealtimeSession", reason: str) -> None:
        if s.response is not None and not s.response.done() and s.active is not None:
            s.active["cancelled"] = reason
            s.response.cancel()
            await asyncio.gather(s.response, return_exceptions=True)

    # -- speaking --------------------------------------------------------------------------------------
    async def _speak(self, s: "RealtimeSession", text: str, options: dict) -> bytes:
        answer = await self._audio.speech(s.tenant, {"model": SPEECH_MODEL, "input": text[:4096], "voice": _voice(options["voice"]),
                                                     "response_format": "pcm", "speed": options["speed"]})
        if answer.kind == "relayed":  # an upstream's speech
            pcm = b"".join([chunk async for chunk in answer.body.body])
        else:
            pcm = answer.body
        return audio.from_pcm24k(pcm, options["format"]["type"])

    # -- the response ------------------------------------------------------------------------------------
    async def run(self, s: "RealtimeSession", options: dict, params: dict, rate: list[dict] | None) -> None:
        from app.services.realtime.stream import ResponseStream  # the event shaping, one response at a time

        await ResponseStream(self, s, options, params, rate).run()

    def input_audio_tokens(self, s: "RealtimeSession", params: dict) -> int:
        fmt = s.session["audio"]["input"]["format"]["type"]
        return sum(math.ceil(audio.seconds(len(data), fmt) * 10) for data in s.audio_of_inputs())

    @staticmethod
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()


def _voice(voice: str):
    """A session's custom voice (kept as its id) is a voice object to the speech endpoint."""
    return {"id": voice} if voice.startswith("voice_") else voice
