"""The offline model's answers to images and speech requests, from plans the services checked.

Images always come back as base64 here: a `url` answer is a link to this server, which the images
service makes (it owns the blob store and the temporary links), whichever provider drew the picture.
"""
from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, AsyncIterator

from app.inference.base import MediaAnswer, MediaRequest
from app.inference.providers.offline import audio
from app.inference.providers.offline import images as model

SPEECH_MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm"}


async def images(request: MediaRequest) -> MediaAnswer:
    plan: model.ImageJob = request.plan
    if plan.stream:
        return MediaAnswer("events", progress_events(plan) if request.framing == "progress" else image_events(plan))
    return MediaAnswer("json", await image_body(plan))


async def image_body(plan: model.ImageJob) -> dict:
    blobs = await asyncio.gather(*(asyncio.to_thread(model.render_bytes, plan, i) for i in range(plan.n)))
    data = []
    for index, blob in enumerate(blobs):
        item = {"b64_json": base64.b64encode(blob).decode()}
        if plan.model == "dall-e-3":
            item["revised_prompt"] = model.revised_prompt(plan, index)
        data.append(item)
    body = {"created": int(time.time()), "data": data}
    if plan.gpt:
        body.update(background=plan.background, output_format=plan.fmt, size=f"{plan.width}x{plan.height}",
                    quality=plan.quality, usage=model.usage(plan))
        if plan.user:
            body["safety_identifier"] = plan.user
    return body


async def image_events(plan: model.ImageJob) -> AsyncIterator[tuple[str, dict]]:
    """OpenAI's image stream: `partial_images` coarse previews, then the finished image, per image."""
    prefix = "image_generation" if plan.kind == "generate" else "image_edit"
    usage = model.usage(plan)
    common = {"size": f"{plan.width}x{plan.height}", "quality": plan.quality, "background": plan.background, "output_format": plan.fmt}
    for index in range(plan.n):
        image = await asyncio.to_thread(model.draw, plan, index)
        for step in range(plan.partial_images):
            partial = await asyncio.to_thread(lambda: model.render_bytes(plan, index, model.blur_for(image, step, plan.partial_images)))
            yield f"{prefix}.partial_image", {"type": f"{prefix}.partial_image", "b64_json": base64.b64encode(partial).decode(),
                                              "created_at": int(time.time()), **common, "partial_image_index": step}
        final = await asyncio.to_thread(model.render_bytes, plan, index, image)
        event = {"type": f"{prefix}.completed", "b64_json": base64.b64encode(final).decode(), "created_at": int(time.time()),
                 **common, "usage": usage}
        yield f"{prefix}.completed", event


async def progress_events(plan: model.ImageJob) -> AsyncIterator[tuple[str, Any]]:
    """The gateway framing (Seedream-style): `progress` as each image is drawn and encoded, a `result`
    per image, then `done`. Partial previews have no place in it and are not rendered."""
    steps = 2 * plan.n
    for index in range(plan.n):
        image = await asyncio.to_thread(model.draw, plan, index)
        yield "progress", {"type": "progress", "progress": 100 * (2 * index + 1) // steps}
        final = await asyncio.to_thread(model.render_bytes, plan, index, image)
        yield "progress", {"type": "progress", "progress": 100 * (2 * index + 2) // steps}
        yield "result", {"type": "result", "index": index, "b64_json": base64.b64encode(final).decode(),
                         "size": f"{plan.width}x{plan.height}", "output_format": plan.fmt}
    yield "done", "[DONE]"


async def speech(request: MediaRequest) -> MediaAnswer:
    params = request.plan if isinstance(request.plan, dict) else request.params  # the plan may add a custom voice's pitch
    if params.get("stream_format") == "sse":
        return MediaAnswer("events", _speech_events(params))
    media_type, data = await _spoken(params)
    return MediaAnswer("content", data, media_type)


async def _spoken(params: dict) -> tuple[str, bytes]:
    fmt = params.get("response_format") or "mp3"
    voice = params["voice"] if isinstance(params["voice"], str) else params["voice"]["id"]

    def render() -> bytes:
        return audio.encode(audio.waveform(params["input"], voice, float(params.get("speed") or 1.0), params.get("voice_pitch")), fmt)

    return SPEECH_MEDIA_TYPES[fmt], await asyncio.to_thread(render)


async def _speech_events(params: dict) -> AsyncIterator[tuple[str, dict]]:
    """`speech.audio.delta` events carrying base64 chunks of the audio, then `speech.audio.done`."""
    _, data = await _spoken(params)
    for start in range(0, len(data), 16 * 1024):
        yield "speech.audio.delta", {"type": "speech.audio.delta", "audio": base64.b64encode(data[start:start + 16 * 1024]).decode()}
    input_tokens = max(1, len(params["input"]) // 4)
    output_tokens = max(1, round(audio.speech_seconds(params["input"], float(params.get("speed") or 1.0)) * 20))
    yield "speech.audio.done", {"type": "speech.audio.done", "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                                                                       "total_tokens": input_tokens + output_tokens}}
