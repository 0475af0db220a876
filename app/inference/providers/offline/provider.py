"""The built-in offline model: the default provider, and the one tests use. It never touches the network.

Deterministic (the answer is a function of the request), schema-valid where a schema is given, streamed
in realistic chunks, with usage from real token counts. Each method validates its parameters before
producing anything, so a stream raises its 400 on the first `anext()`, before any chunk.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import AsyncIterator, Iterator

from app.core.ids import new_id
from app.inference.base import MediaAnswer, MediaRequest, ProviderInfo, VideoAssets, VideoProgress
from app.inference.providers.offline import chat, embeddings, legacy, media, moderation, transcripts
from app.inference.providers.offline.offload import offloaded

CHUNK_DELAY_ENV = "UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS"


def _env_delay() -> float:
    try:
        return max(float(os.environ.get(CHUNK_DELAY_ENV, "0") or 0), 0.0)
    except ValueError:
        return 0.0


def _include_usage(params: dict) -> bool:
    options = params.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))


def _input_size(value) -> int:
    """Characters (or token ids, or parts) of an embeddings or moderations input, counted without walking the text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(len(item) if isinstance(item, (str, list)) else len(str(item.get("text") or "")) + 1 if isinstance(item, dict) else 1
                   for item in value)
    return 0


CHEAP_CHARS = 4096


def _cheap_chat(params: dict) -> bool:
    """A plan of microseconds: a short text conversation answered with text (no schemas to fill, one
    choice, no log probabilities). Planned on the loop: a thread hand-off would cost more than the plan."""
    if params.get("tools") or params.get("functions") or params.get("logprobs") or (params.get("n") or 1) != 1:
        return False
    fmt = params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        return False
    size = 0
    for message in params.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    return False
                size += len(part["text"])
        elif content is not None:
            return False
        if size > CHEAP_CHARS:
            return False
    return True


async def _plan_chat(params: dict):
    return chat.plan(params) if _cheap_chat(params) else await offloaded(chat.plan, params)


class OfflineProvider:
    info = ProviderInfo(name="offline", kind="offline")

    def __init__(self, chunk_delay_ms: float | None = None) -> None:
        """`chunk_delay_ms`: a pause between streamed chunks (None: `UNDERSTUDY_OFFLINE_CHUNK_DELAY_MS`, else 0).
        A non-streamed answer takes as long as its stream would: a slow model is slow either way."""
        self.chunk_delay_ms = _env_delay() if chunk_delay_ms is None else max(float(chunk_delay_ms), 0.0)

    @staticmethod
    def _meta(params: dict, prefix: str) -> dict:
        return {"id": new_id(prefix), "created": int(time.time()), "model": params.get("model")}

    async def _paced(self, chunks: Iterator[dict]) -> AsyncIterator[dict]:
        delay = self.chunk_delay_ms / 1000
        first = True
        for item in chunks:
            if delay and not first:
                await asyncio.sleep(delay)
            first = False
            yield item

    async def _as_slow_as_a_stream(self, chunks: Iterator[dict]) -> None:
        if self.chunk_delay_ms:
            await asyncio.sleep(max(sum(1 for _ in chunks) - 1, 0) * self.chunk_delay_ms / 1000)

    async def chat(self, params: dict) -> dict:
        plan, meta = await _plan_chat(params), self._meta(params, "chatcmpl-")
        await self._as_slow_as_a_stream(chat.chunks(plan, meta, False))
        return chat.completion(plan, meta)

    async def chat_stream(self, params: dict) -> AsyncIterator[dict]:
        # Planned off the event loop unless cheap: schema-valid values and token counts can be a second of
        # work (bounded: schema_limits.py). Errors surface on the first anext(), before any chunk.
        plan = await _plan_chat(params)
        async for item in self._paced(chat.chunks(plan, self._meta(params, "chatcmpl-"), _include_usage(params))):
            yield item

    async def completions(self, params: dict) -> dict:
        choices, usage = await offloaded(legacy.plan, params)
        meta = self._meta(params, "cmpl-")
        await self._as_slow_as_a_stream(legacy.chunks(choices, usage, meta, False))
        return legacy.completion(choices, usage, meta)

    async def completions_stream(self, params: dict) -> AsyncIterator[dict]:
        choices, usage = await offloaded(legacy.plan, params)
        async for item in self._paced(legacy.chunks(choices, usage, self._meta(params, "cmpl-"), _include_usage(params))):
            yield item

    async def embeddings(self, params: dict) -> dict:
        if _input_size(params.get("input")) > 4096:
            return await offloaded(embeddings.create, params)  # big inputs: off the event loop
        return embeddings.create(params)

    async def moderations(self, params: dict) -> dict:
        if _input_size(params.get("input")) > 4096:
            return await offloaded(moderation.create, params, new_id("modr-"))  # long texts: off the event loop
        return moderation.create(params, new_id("modr-"))

    async def images(self, request: MediaRequest) -> MediaAnswer:
        return await media.images(request)

    async def speech(self, request: MediaRequest) -> MediaAnswer:
        return await media.speech(request)

    async def videos(self, request: MediaRequest, report: VideoProgress) -> VideoAssets | None:
        """The clip, rendered off the event loop in the video pool (progress up to here is the video job's own pacing)."""
        from app.inference.providers.offline import video

        plan = request.plan
        rendered = await video.rendered( plan["prompt"], plan["size"], int(plan["seconds"]), plan.get("seed", ""), plan.get("reference"))
        return VideoAssets(rendered.mp4, rendered.thumbnail, rendered.spritesheet)

    async def transcription(self, request: MediaRequest) -> MediaAnswer:
        return await transcripts.answer(request.plan)

    async def close(self) -> None:
        return None
