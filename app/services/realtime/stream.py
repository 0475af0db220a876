"""One Realtime response: chat-completion chunks in, Realtime server events out, in OpenAI's order —
response.created; per output item: response.output_item.added, conversation.item.added, then for a
message response.content_part.added, the text (or audio transcript and audio) deltas and dones,
response.content_part.done, or for a function call its arguments' deltas and done; then
response.output_item.done, conversation.item.done; finally response.done with the usage.
A cancelled response (response.cancel, or the user talking over it) ends the same way, `cancelled`.
"""
from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from app.core.errors import APIError
from app.core.ids import new_id
from app.services.realtime import audio

if TYPE_CHECKING:
    from app.services.realtime.respond import Responder
    from app.services.realtime.session import RealtimeSession

_CHUNK_SECONDS = 0.2
log = logging.getLogger("understudy.realtime")


class ResponseStream:
    def __init__(self, responder: "Responder", s: "RealtimeSession", options: dict, params: dict, rate: list[dict] | None) -> None:
        self.responder, self.s, self.options, self.params, self.rate = responder, s, options, params, rate
        self.in_conversation = options["conversation"] == "auto"
        self.audio_out = options["output_modalities"] == ["audio"]
        self.response = {
            "object": "realtime.response", "id": new_id("resp_"), "status": "in_progress", "status_details": None, "output": [],
            "conversation_id": s.conversation_id if self.in_conversation else None, "output_modalities": options["output_modalities"],
            "max_output_tokens": options["max_output_tokens"],
            "audio": {"output": {"format": options["format"], "voice": options["voice"]}}, "usage": None, "metadata": options["metadata"],
        }
        self.message: dict | None = None  # the open assistant message
        self.text = ""
        self.calls: dict[int, dict] = {}  # chat tool-call index -> the open function_call item
        self.open: list[dict] = []  # items added and not yet done, in output order
        self.usage: dict | None = None
        self.spoken_tokens = 0

    async def emit(self, event: dict) -> None:
        await self.s.emit(event)

    def _ids(self, item: dict) -> dict:
        return {"response_id": self.response["id"], "item_id": item["id"], "output_index": self.response["output"].index(item)}

    async def _open(self, item: dict) -> None:
        previous = self.s.items[-1]["id"] if self.in_conversation and self.s.items else None
        self.response["output"].append(item)
        self.open.append(item)
        await self.emit({"type": "response.output_item.added", "response_id": self.response["id"], "output_index": len(self.response["output"]) - 1,
                         "item": item})
        if self.in_conversation:
            self.s.add_generated(item)
            await self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item})

    async def _close(self, item: dict, status: str) -> None:
        item["status"] = status
        self.open.remove(item)
        await self.emit({"type": "response.output_item.done", "response_id": self.response["id"],
                         "output_index": self.response["output"].index(item), "item": item})
        if self.in_conversation:
            await self.emit({"type": "conversation.item.done", "previous_item_id": self._previous(item), "item": item})

    def _previous(self, item: dict) -> str | None:
        at = self.s.index(item["id"])
        return self.s.items[at - 1]["id"] if at > 0 else None

    # -- message ---------------------------------------------------------------------------------------
    async def _text(self, delta: str) -> None:
        if self.message is None:
            self.message = {"id": new_id("item_"), "type": "message", "object": "realtime.item", "status": "in_progress", "role": "assistant", "content": []}
            await self._open(self.message)
            part = {"type": "audio", "transcript": ""} if self.audio_out else {"type": "text", "text": ""}
            await self.emit({"type": "response.content_part.added", **self._ids(self.message), "content_index": 0, "part": part})
        self.text += delta
        kind = "response.output_audio_transcript.delta" if self.audio_out else "response.output_text.delta"
        await self.emit({"type": kind, **self._ids(self.message), "content_index": 0, "delta": delta})

    async def _finish_message(self, status: str) -> None:
        item, ids = self.message, self._ids(self.message)
        if self.audio_out:
            if status == "completed" and self.text.strip():
                spoken = await self.responder._speak(self.s, self.text, self.options)
                fmt = self.options["format"]["type"]
                step = int(audio.RATE[fmt] * _CHUNK_SECONDS) * audio.WIDTH[fmt]
                for start in range(0, len(spoken), step):
                    await self.emit({"type": "response.output_audio.delta", **ids, "content_index": 0, "delta": self.responder.b64(spoken[start:start + step])})
                self.spoken_tokens = math.ceil(audio.seconds(len(spoken), fmt) * 20)
                if self.in_conversation:
                    self.s.keep_audio(item["id"], spoken)
            await self.emit({"type": "response.output_audio.done", **ids, "content_index": 0})
            await self.emit({"type": "response.output_audio_transcript.done", **ids, "content_index": 0, "transcript": self.text})
            part = {"type": "audio", "transcript": self.text}
            item["content"] = [{"type": "output_audio", "transcript": self.text}]
        else:
            await self.emit({"type": "response.output_text.done", **ids, "content_index": 0, "text": self.text})
            part = {"type": "text", "text": self.text}
            item["content"] = [{"type": "output_text", "text": self.text}]
        await self.emit({"type": "response.content_part.done", **ids, "content_index": 0, "part": part})
        await self._close(item, status)
        self.message = None

    # -- function calls ----------------------------------------------------------------------------------
    async def _call(self, delta: dict) -> None:
        index = delta.get("index", 0)
        item = self.calls.get(index)
        function = delta.get("function") or {}
        if item is None:
            if self.message is not None:
                await self._finish_message("completed")
            item = self.calls[index] = {"id": new_id("item_"), "type": "function_call", "object": "realtime.item", "status": "in_progress",
                                        "name": function.get("name") or "", "call_id": delta.get("id") or new_id("call_"), "arguments": ""}
            await self._open(item)
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            await self.emit({"type": "response.function_call_arguments.delta", **self._ids(item), "call_id": item["call_id"], "delta": function["arguments"]})

    async def _finish_call(self, item: dict, status: str) -> None:
        await self.emit({"type": "response.function_call_arguments.done", **self._ids(item), "call_id": item["call_id"], "name": item["name"],
                         "arguments": item["arguments"]})
        await self._close(item, status)

    # -- the whole response --------------------------------------------------------------------------------
    async def run(self) -> None:
        s = self.s
        s.active = {"response": self.response, "cancelled": None}
        status, details, finish = "completed", None, None
        await self.emit({"type": "response.created", "response": {**self.response, "output": []}})
        if self.rate:
            await self.emit({"type": "rate_limits.updated", "rate_limits": self.rate})
        try:
            chunks = await self.responder._inference.stream(s.tenant, "chat_stream", self.params, endpoint="realtime")
            async for chunk in chunks:
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        await self._text(delta["content"])
                    for call in delta.get("tool_calls") or ():
                        await self._call(call)
                    finish = choice.get("finish_reason") or finish
            if finish == "length":
                status, details = "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
            for item in list(self.open):
                if item is self.message:
                    await self._finish_message("completed" if status == "completed" else "incomplete")
                else:
                    await self._finish_call(item, "completed" if status == "completed" else "incomplete")
        except asyncio.CancelledError:
            if s.closing or not s.active or not s.active.get("cancelled"):
                raise  # the session is going away: nobody to tell
            status, details = "cancelled", {"type": "cancelled", "reason": s.active["cancelled"]}
            await self._close_all("incomplete")
        except Exception as error:  # the model call's refusal (an APIError), or a bug: the response fails, the session goes on
            if not isinstance(error, APIError):
                log.exception("realtime: a response failed")
                error = APIError("The server had an error while processing your request. Sorry about that!", status_code=500, type="server_error")
            status = "failed"
            details = {"type": "failed", "error": {"type": error.type, "code": error.code, "message": error.message}}
            await self._close_all("incomplete")
        self.response.update(status=status, status_details=details, usage=self._usage())
        s.active = None
        await self.emit({"type": "response.done", "response": self.response})

    async def _close_all(self, status: str) -> None:
        for item in list(self.open):
            if item is self.message:
                if self.audio_out:
                    item["content"] = [{"type": "output_audio", "transcript": self.text}]
                else:
                    item["content"] = [{"type": "output_text", "text": self.text}]
                self.message = None
            await self._close(item, status)

    def _usage(self) -> dict:
        usage = self.usage or {}
        text_in = int(usage.get("prompt_tokens") or 0)
        audio_in = self.responder.input_audio_tokens(self.s, self.params)
        text_out = int(usage.get("completion_tokens") or 0)
        audio_out = self.spoken_tokens
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return {"total_tokens": text_in + audio_in + text_out + audio_out, "input_tokens": text_in + audio_in, "output_tokens": text_out + audio_out,
                "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_in, "image_tokens": 0, "cached_tokens": cached,
                                        "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0, "image_tokens": 0}},
                "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out}}
