"""One Realtime session: the client events of OpenAI's Realtime protocol (GA) in, server events out.

The socket is the controller's (app/api/realtime.py); this sees decoded events and a `send` coroutine.
Every refusal is an `error` event naming the client event (the socket stays open). A response is a task,
so the client can keep appending audio or cancel it; it is generated in app/services/realtime/respond.py.
Everything the client can grow is bounded: the input audio buffer, the number of items and their bytes.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import msgspec
from openai.types.realtime import (
    realtime_conversation_item_assistant_message_param as assistant_param,
    realtime_conversation_item_function_call_output_param as output_param,
    realtime_conversation_item_function_call_param as call_param,
    realtime_conversation_item_system_message_param as system_param,
    realtime_conversation_item_user_message_param as user_param,
)

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.core.validation import OFFLOAD_BYTES
from app.services.realtime import audio
from app.services.realtime.config import apply_update, checked, response_options
from app.services.realtime.respond import Responder

log = logging.getLogger("understudy.realtime")

CLIENT_EVENTS = ("session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
                 "conversation.item.create", "conversation.item.retrieve", "conversation.item.truncate", "conversation.item.delete",
                 "response.create", "response.cancel", "output_audio_buffer.clear")
_ITEM_TYPES = {("message", "user"): user_param.RealtimeConversationItemUserMessageParam,
               ("message", "assistant"): assistant_param.RealtimeConversationItemAssistantMessageParam,
               ("message", "system"): system_param.RealtimeConversationItemSystemMessageParam,
               ("function_call", None): call_param.RealtimeConversationItemFunctionCallParam,
               ("function_call_output", None): output_param.RealtimeConversationItemFunctionCallOutputParam}
_encode = msgspec.json.encode
MAX_ID_CHARS = 64  # client-chosen ids (items, events) are echoed back: kept short


def _shown(value) -> str:
    text = str(value)
    return text if len(text) <= MAX_ID_CHARS else text[:MAX_ID_CHARS] + "…"


@dataclass(frozen=True)
class Limits:
    audio_bytes: int
    items: int
    conversation_bytes: int


class RealtimeSession:
    def __init__(self, tenant: str, session: dict, send: Callable[[dict], Awaitable[None]], limits: Limits, responder: Responder) -> None:
        self.tenant = tenant
        self.session = session
        self._send = send
        self.limits = limits
        self.responder = responder
        self.items: list[dict] = []  # the conversation, in order (audio bytes kept in `_audio`)
        self._sizes: dict[str, int] = {}
        self._audio: dict[str, bytes] = {}  # item id -> its audio (input audio as sent; output audio as spoken)
        self.buffer = audio.InputBuffer(limits.audio_bytes)
        self._speech_item: str | None = None
        self.response: asyncio.Task | None = None
        self.active: dict | None = None  # the response in progress: {"response": …, "cancelled": reason or None}
        self.heard: dict[str, str] = {}  # item id -> what the model heard of its audio (when no transcript is shown)
        self.closing = False
        self._size = 0  # bytes of the client message being handled
        self.conversation_id = new_id("conv_")

    # -- plumbing --------------------------------------------------------------------------------------
    async def emit(self, event: dict) -> None:
        await self._send({"type": event.pop("type"), "event_id": new_id("event_"), **event})

    async def error(self, error: APIError, client_event_id: str | None = None) -> None:
        await self.emit({"type": "error", "error": {"type": error.type, "code": error.code, "message": error.message,
                                                    "param": error.param, "event_id": client_event_id}})

    async def start(self) -> None:
        await self.emit({"type": "session.created", "session": self.session})

    async def close(self) -> None:
        self.closing = True
        if self.response is not None and not self.response.done():
            self.response.cancel()
            await asyncio.gather(self.response, return_exceptions=True)

    async def handle(self, raw: str | bytes) -> None:
        """One client message; every refusal becomes an `error` event."""
        self._size = len(raw)
        try:
            event = msgspec.json.decode(raw)
        except (msgspec.DecodeError, ValueError, RecursionError):
            await self.error(invalid_request("The server could not parse the event: it is not valid JSON.", code="invalid_json"))
            return
        event_id = event.get("event_id") if isinstance(event, dict) and isinstance(event.get("event_id"), str) else None
        event_id = event_id if event_id is None or len(event_id) <= MAX_ID_CHARS else None
        try:
            if not isinstance(event, dict):
                raise invalid_request("Invalid event: expected a JSON object.", code="invalid_type")
            kind = event.get("type")
            if kind not in CLIENT_EVENTS:
                if not isinstance(kind, str):
                    raise invalid_request("Missing required parameter: 'type'.", param="type", code="missing_required_parameter")
                supported = ", ".join(f"'{name}'" for name in CLIENT_EVENTS)
                raise invalid_request(f"Invalid value: '{kind[:100]}'. Supported values are: {supported}.", param="type", code="invalid_value")
            await getattr(self, "_" + kind.replace(".", "_"))(event)
        except APIError as error:
            await self.error(error, event_id)
        except Exception:  # a bug must not end the session: OpenAI's server_error, and the socket stays open
            log.exception("realtime: handling a %s event failed", event.get("type") if isinstance(event, dict) else "malformed")
            await self.error(APIError("The server had an error while processing your request. Sorry about that!", status_code=500,
                                      type="server_error"), event_id)

    # -- session ---------------------------------------------------------------------------------------
    async def _checked(self, check, *args):
        """A request check: off the event loop when the message was large (pydantic walks every part)."""
        if self._size > OFFLOAD_BYTES:
            return await asyncio.to_thread(check, *args)
        return check(*args)

    async def _session_update(self, event: dict) -> None:
        self.session = await self._checked(apply_update, self.session, event.get("session"))
        await self.emit({"type": "session.updated", "session": self.session})

    # -- input audio -----------------------------------------------------------------------------------
    @property
    def _in_format(self) -> str:
        return self.session["audio"]["input"]["format"]["type"]

    async def _input_audio_buffer_append(self, event: dict) -> None:
        chunk = event.get("audio")
        if not isinstance(chunk, str):
            raise invalid_request("Missing required parameter: 'audio'.", param="audio", code="missing_required_parameter")
        try:
            data = base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_request("Invalid 'audio': expected base64-encoded audio bytes.", param="audio", code="invalid_value") from None
        self.buffer.append(data)
        detection = self.session["audio"]["input"]["turn_detection"]
        if detection is None:
            return
        for turn, ms in self.buffer.vad(self._in_format, detection):
            if turn == "started":
                self._speech_item = new_id("item_")
                await self.emit({"type": "input_audio_buffer.speech_started", "audio_start_ms": ms, "item_id": self._speech_item})
                if detection.get("interrupt_response") and self.response is not None and not self.response.done():
                    await self.responder.cancel(self, "turn_detected")
            else:
                await self.emit({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": ms, "item_id": self._speech_item})
                await self._commit(self._speech_item)
                if detection.get("create_response", True):
                    await self._response_create({})

    async def _input_audio_buffer_commit(self, event: dict) -> None:
        await self._commit(None)

    async def _commit(self, item_id: str | None) -> None:
        fmt = self._in_format
        ms = audio.seconds(len(self.buffer.data), fmt) * 1000
        if ms < 100:
            raise invalid_request(f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {ms:.2f}ms of audio.",
                                  code="input_audio_buffer_commit_empty")
        self._room(len(self.buffer.data))
        data = self.buffer.take(fmt)
        item_id = item_id or new_id("item_")
        self._speech_item = None
        item = {"id": item_id, "type": "message", "object": "realtime.item", "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        previous = self.items[-1]["id"] if self.items else None
        await self.emit({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        self._add(item, None, data)
        await self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
        await self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        await self.responder.transcribe(self, item, data, fmt)

    async def _input_audio_buffer_clear(self, event: dict) -> None:
        self.buffer.take(self._in_format)
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _output_audio_buffer_clear(self, event: dict) -> None:
        raise invalid_request("output_audio_buffer.clear is only supported for WebRTC and SIP connections; over a WebSocket the client "
                              "plays the audio itself (stop playback and send conversation.item.truncate).", param="type", code="invalid_value")

    # -- conversation ----------------------------------------------------------------------------------
    def index(self, item_id) -> int:
        for i, item in enumerate(self.items):
            if item["id"] == item_id:
                return i
        return -1

    def _room(self, size: int) -> None:
        if len(self.items) >= self.limits.items:
            raise invalid_request(f"The conversation already holds {self.limits.items} items, this server's limit; delete some first.",
                                  code="conversation_too_many_items")
        if sum(self._sizes.values()) + size > self.limits.conversation_bytes:
            raise invalid_request(f"The conversation would hold more than {self.limits.conversation_bytes} bytes, this server's limit; delete some items first.",
                                  code="conversation_too_large")

    def _add(self, item: dict, after: str | None = None, audio_bytes: bytes | None = None, *, at_end: bool = True) -> None:
        position = len(self.items) if at_end else (0 if after is None else self.index(after) + 1)
        self.items.insert(position, item)
        self._sizes[item["id"]] = len(_encode(item)) + len(audio_bytes or b"")
        if audio_bytes is not None:
            self._audio[item["id"]] = audio_bytes

    def add_generated(self, item: dict, size: int = 0) -> None:
        """An item a response made (counted against the limits, never refused mid-response)."""
        self.items.append(item)
        self._sizes[item["id"]] = len(_encode(item)) + size

    async def _conversation_item_create(self, event: dict) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            raise invalid_request("Missing required parameter: 'item'.", param="item", code="missing_required_parameter")
        kind, role = item.get("type"), item.get("role")
        item_type = _ITEM_TYPES.get((kind, role if kind == "message" else None)) if isinstance(kind, str) and (role is None or isinstance(role, str)) else None
        if item_type is None and kind == "message":
            raise invalid_request(f"Invalid value: '{_shown(role)}'. Supported values are: 'user', 'assistant', and 'system'.", param="item.role",
                                  code="invalid_value")
        if item_type is None:
            raise invalid_request(f"Invalid value: '{_shown(kind)}'. Supported values are: 'message', 'function_call', and 'function_call_output'.",
                                  param="item.type", code="invalid_value")
        await self._checked(checked, item_type, item, "item")
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and self.index(previous) < 0:
            raise invalid_request(f"Error adding item: the previous item with id '{_shown(previous)}' does not exist.", param="previous_item_id",
                                  code="item_create_invalid_previous_item_id")
        item_id = item.get("id") or new_id("item_")
        if len(item_id) > MAX_ID_CHARS:
            raise invalid_request(f"Invalid 'item.id': string too long. Expected a string with maximum length {MAX_ID_CHARS}, but got a string "
                                  f"with length {len(item_id)} instead.", param="item.id", code="string_above_max_length")
        if self.index(item_id) >= 0:
            raise invalid_request(f"Error adding item: the item with id '{item_id}' already exists.", param="item.id", code="item_create_duplicate_item_id")
        stored = {**item, "id": item_id, "object": "realtime.item", "status": "completed"}
        audio_bytes = None
        if item["type"] == "message":
            stored["content"] = [dict(part) for part in item["content"]]
            for part in stored["content"]:
                if part.get("type") == "input_audio" and part.get("audio"):
                    try:
                        audio_bytes = base64.b64decode(part.pop("audio"), validate=True)
                    except (binascii.Error, ValueError):
                        raise invalid_request("Invalid 'item.content.audio': expected base64-encoded audio bytes.", param="item.content.audio",
                                              code="invalid_value") from None
                    part.setdefault("transcript", None)
        self._room(len(_encode(stored)) + len(audio_bytes or b""))
        if previous is None:
            after, at_end = None, True
        else:
            after, at_end = (None if previous == "root" else previous), False
        shown_previous = previous if previous not in (None, "root") else (self.items[-1]["id"] if at_end and self.items else None)
        self._add(stored, after, audio_bytes, at_end=at_end)
        await self.emit({"type": "conversation.item.added", "previous_item_id": shown_previous, "item": stored})
        await self.emit({"type": "conversation.item.done", "previous_item_id": shown_previous, "item": stored})
        if audio_bytes is not None:
            await self.responder.transcribe(self, stored, audio_bytes, self._in_format)

    def _found(self, event: dict, action: str, code: str) -> dict:
        item_id = event.get("item_id")
        at = self.index(item_id) if isinstance(item_id, str) else -1
        if at < 0:
            raise invalid_request(f"Error {action} item: the item with id '{_shown(item_id)}' does not exist.", param="item_id", code=code)
        return self.items[at]

    async def _conversation_item_retrieve(self, event: dict) -> None:
        item = self._found(event, "retrieving", "item_retrieve_invalid_item_id")
        shown = {**item}
        if item["id"] in self._audio and item.get("type") == "message":
            encoded = base64.b64encode(self._audio[item["id"]]).decode()
            shown["content"] = [{**part, "audio": encoded} if part.get("type") in ("input_audio", "output_audio") else part for part in item["content"]]
        await self.emit({"type": "conversation.item.retrieved", "item": shown})

    async def _conversation_item_delete(self, event: dict) -> None:
        item = self._found(event, "deleting", "item_delete_invalid_item_id")
        self.items.remove(item)
        self._sizes.pop(item["id"], None)
        self._audio.pop(item["id"], None)
        self.heard.pop(item["id"], None)
        await self.emit({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def _conversation_item_truncate(self, event: dict) -> None:
        item = self._found(event, "truncating", "item_truncate_invalid_item_id")
        index, end_ms = event.get("content_index", 0), event.get("audio_end_ms")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise invalid_request("Invalid 'audio_end_ms': expected a non-negative integer.", param="audio_end_ms", code="invalid_value")
        parts = item.get("content") or []
        if item.get("role") != "assistant" or not isinstance(index, int) or not 0 <= index < len(parts) or parts[index].get("type") != "output_audio":
            raise invalid_request("Only assistant messages with audio content can be truncated.", param="item_id", code="invalid_value")
        spoken = self._audio.get(item["id"], b"")
        fmt = self.session["audio"]["output"]["format"]["type"]
        total_ms = int(audio.seconds(len(spoken), fmt) * 1000)
        if end_ms > total_ms:
            raise invalid_request(f"Audio content of {total_ms}ms is already shorter than {end_ms}ms", param="audio_end_ms", code="invalid_value")
        keep = int(end_ms / 1000 * audio.RATE[fmt]) * audio.WIDTH[fmt]
        self._audio[item["id"]] = spoken[:keep]
        parts[index]["transcript"] = ""  # nothing the user did not hear stays in the context
        await self.emit({"type": "conversation.item.truncated", "item_id": item["id"], "content_index": index, "audio_end_ms": end_ms})

    def audio_of_inputs(self):
        for item in self.items:
            if item.get("role") == "user" and item["id"] in self._audio:
                yield self._audio[item["id"]]

    def keep_audio(self, item_id: str, data: bytes) -> None:
        self._audio[item_id] = data
        self._sizes[item_id] = self._sizes.get(item_id, 0) + len(data)

    # -- responses -------------------------------------------------------------------------------------
    async def _response_create(self, event: dict) -> None:
        if self.response is not None and not self.response.done():
            raise invalid_request("Conversation already has an active response in progress. Wait until the response is finished before creating a new one.",
                                  code="conversation_already_has_active_response")
        options = await self._checked(response_options, self.session, event.get("response"))
        if options["conversation"] not in ("auto", "none"):
            raise invalid_request(f"Invalid value: '{options['conversation']}'. Supported values are: 'auto' and 'none'.",
                                  param="response.conversation", code="invalid_value")
        if options["conversation"] == "auto":
            self._room(0)
        params = self.responder.prompt(self, options)
        rate = await self.responder.admit(self, params)
        self.response = asyncio.create_task(self.responder.run(self, options, params, rate), name="realtime-response")

    async def _response_cancel(self, event: dict) -> None:
        wanted = event.get("response_id")
        if self.response is None or self.response.done() or (wanted and wanted != self.responder.current_id(self)):
            raise invalid_request("Cancellation failed: no active response found", code="response_cancel_not_active")
        await self.responder.cancel(self, "client_cancelled")
