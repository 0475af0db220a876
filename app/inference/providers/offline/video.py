"""The offline video model: a real, small H.264 MP4 drawn from the prompt, plus its thumbnail and
spritesheet (WebP, as OpenAI's content variants are).

Deterministic: the colours, the moving shape and the caption come from a hash of the request, so the
same request renders the same frames. The clip has the requested size and duration at a low frame rate
(FPS), so a 12 s clip at 1792x1024 is still a second or two of encoding, run off the event loop by the
caller. A reference image (input_reference, or the first frame of a source video) is the backdrop.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

FPS = 4
THUMB_WIDTH = 360
SPRITE_COLUMNS = 4
SPRITE_WIDTH = 160
MAX_CLIP_PIXELS = 4096 * 4096  # an uploaded clip's first frame is decoded whole
# Rendering a clip is a second or two of CPU: one at a time, in a pool of its own, so videos never hold
# up the chat model's work in the offline model's pool (offload.py).
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offline-video")


@dataclass
class Rendered:
    mp4: bytes
    thumbnail: bytes  # image/webp
    spritesheet: bytes  # image/webp
    frames: int


def _palette(seed: bytes) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    return (tuple(seed[0:3]), tuple(seed[3:6]), tuple(255 - b for b in seed[0:3]))  # type: ignore[return-value]


async def rendered(prompt: str, size: str, seconds: int, seed_text: str = "", reference: bytes | None = None) -> "Rendered":
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(render, prompt, size, seconds, seed_text, reference))


async def probed(data: bytes) -> tuple[str, float, bytes]:
    return await asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(probe, data))


def render(prompt: str, size: str, seconds: int, seed_text: str = "", reference: bytes | None = None) -> Rendered:
    import av
    from PIL import Image, ImageDraw, ImageFont

    width, height = (int(v) for v in size.split("x"))
    seed = hashlib.sha256(f"{seed_text}\x00{prompt}\x00{size}\x00{seconds}".encode()).digest()
    top, bottom, accent = _palette(seed)
    backdrop = None
    if reference:
        try:
            backdrop = Image.open(io.BytesIO(reference)).convert("RGB").resize((width, height))
        except Exception:  # an undecodable reference was refused at create; never fail the render on it
            backdrop = None
    if backdrop is None:
        backdrop = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(backdrop)
        for y in range(0, height, 8):  # a vertical gradient in bands (cheap, and compresses well)
            t = y / max(1, height - 1)
            draw.rectangle((0, y, width, y + 8), fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    font = ImageFont.load_default()
    caption = "\n".join(textwrap.wrap(prompt, 40)[:4])
    radius = max(16, min(width, height) // 10)
    total = seconds * FPS
    out = io.BytesIO()
    stills: list[Image.Image] = []
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32"}
        for index in range(total):
            frame_image = backdrop.copy()
            draw = ImageDraw.Draw(frame_image)
            t = index / max(1, total - 1)
            cx = int(radius + (width - 2 * radius) * t)
            cy = int(height / 2 + (height / 4) * ((seed[6 + index % 8] / 255) - 0.5))
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=accent)
            draw.multiline_text((16, 16), caption, fill=(255, 255, 255), font=font)
            draw.text((16, height - 28), f"understudy {index // FPS}s", fill=(255, 255, 255), font=font)
            if index == 0:
                thumbnail = _thumbnail(frame_image)
            if index % FPS == 0:  # kept small: a long clip's stills must not add up
                stills.append(_scaled(frame_image, SPRITE_WIDTH))
            for packet in stream.encode(av.VideoFrame.from_image(frame_image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Rendered(out.getvalue(), thumbnail, _spritesheet(stills), total)


def _webp(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=70)
    return buffer.getvalue()


def _scaled(image, width: int):
    return image.resize((width, max(1, round(image.height * width / image.width))))


def _thumbnail(image) -> bytes:
    return _webp(_scaled(image, THUMB_WIDTH))


def _spritesheet(stills: list) -> bytes:
    """One tile per second of the clip (already SPRITE_WIDTH wide), SPRITE_COLUMNS to a row."""
    from PIL import Image

    tiles = stills
    rows = (len(tiles) + SPRITE_COLUMNS - 1) // SPRITE_COLUMNS
    sheet = Image.new("RGB", (SPRITE_WIDTH * min(SPRITE_COLUMNS, len(tiles)), tiles[0].height * rows))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % SPRITE_COLUMNS) * SPRITE_WIDTH, (i // SPRITE_COLUMNS) * tile.height))
    return _webp(sheet)


def probe(data: bytes) -> tuple[str, float, bytes]:
    """An uploaded clip's `WIDTHxHEIGHT`, duration in seconds and first frame (PNG); ValueError when it is
    not a video PyAV can decode."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            if not 0 < (stream.codec_context.width or 0) * (stream.codec_context.height or 0) <= MAX_CLIP_PIXELS:
                raise ValueError("the clip's frames are too large")
            duration = float(stream.duration * stream.time_base) if stream.duration else float(container.duration or 0) / 1_000_000
            first = next(container.decode(stream)).to_image()
    except Exception as error:
        raise ValueError(str(error)) from error
    buffer = io.BytesIO()
    first.save(buffer, format="PNG")
    return f"{first.width}x{first.height}", duration, buffer.getvalue()
