"""The offline image model: real pictures, drawn with Pillow, deterministic from their inputs.

A generated image is a gradient with translucent shapes, colours and layout seeded by a hash of the
prompt (and the image's index among `n`), with the prompt written on it, so a person looking at a
test's output can tell which request made it. Edits start from the uploaded image (the masked area
repainted), variations recolour it. Everything here is CPU-bound and synchronous: callers run it in a
thread.
"""
from __future__ import annotations

import hashlib
import io
import random
import textwrap
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "svg": "image/svg+xml"}
INPUT_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


class InvalidImage(ValueError):
    """The bytes are not a PNG, JPEG or WebP image Pillow can decode."""


def seed_of(*parts: bytes | str | int) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.digest()


def _colour(rng: random.Random, alpha: int | None = None) -> tuple:
    rgb = tuple(rng.randrange(256) for _ in range(3))
    return rgb if alpha is None else (*rgb, alpha)


def pattern(seed: bytes, width: int, height: int, *, transparent: bool = False) -> Image.Image:
    """A gradient background with translucent shapes, all chosen by `seed`: an RGBA image."""
    rng = random.Random(seed)
    if transparent:
        image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    else:
        ramp = Image.linear_gradient("L")
        ramp = [ramp, ramp.transpose(Image.Transpose.ROTATE_90), Image.radial_gradient("L")][rng.randrange(3)]
        image = Image.composite(
            Image.new("RGBA", (width, height), _colour(rng, 255)),
            Image.new("RGBA", (width, height), _colour(rng, 255)),
            ramp.resize((width, height), Image.Resampling.BILINEAR),
        )
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(rng.randint(5, 11)):
        x0, y0 = rng.uniform(-0.2, 0.9) * width, rng.uniform(-0.2, 0.9) * height
        x1, y1 = x0 + rng.uniform(0.1, 0.6) * width, y0 + rng.uniform(0.1, 0.6) * height
        fill = _colour(rng, 255 if transparent else rng.randint(90, 200))
        shape = rng.randrange(3)
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([(rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(3)], fill=fill)
    return Image.alpha_composite(image, layer)


def caption(image: Image.Image, text: str) -> Image.Image:
    """Writes `text` (wrapped, at most a few lines) on a dark band along the bottom."""
    text = " ".join(text.split())
    if not text:
        return image
    width, height = image.size
    size = max(8, min(width, height) // 22)
    font = ImageFont.load_default(size=size)
    columns = max(8, int(width / (size * 0.55)))
    lines = textwrap.wrap(text, columns)[:4]
    band = (len(lines) + 1) * size * 1.25
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, height - band, width, height), fill=(0, 0, 0, 150))
    for row, line in enumerate(lines):
        draw.text((size * 0.6, height - band + size * (0.6 + row * 1.25)), line, font=font, fill=(255, 255, 255, 255))
    return Image.alpha_composite(image.convert("RGBA"), overlay)


def encode(image: Image.Image, fmt: str, *, compression: int = 100) -> bytes:
    """PNG keeps alpha; JPEG has none (flattened on white); `compression` is OpenAI's 0-100 quality."""
    out = io.BytesIO()
    if fmt == "jpeg":
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
        flat.save(out, "JPEG", quality=max(1, min(95, compression)))
    elif fmt == "webp":
        image.save(out, "WEBP", quality=max(0, min(100, compression)))
    elif fmt == "gif":
        image.convert("RGB").save(out, "GIF")
    else:
        image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def gif(frames: list[Image.Image], duration_ms: int) -> bytes:
    out = io.BytesIO()
    first, *rest = [frame.convert("RGB") for frame in frames]
    first.save(out, "GIF", save_all=True, append_images=rest, duration=duration_ms, loop=0)
    return out.getvalue()


def svg(seed: bytes, width: int, height: int, prompt: str) -> bytes:
    """The same idea as `pattern`, as vector shapes: a gradient, circles, and the prompt."""
    from xml.sax.saxutils import escape

    rng = random.Random(seed)
    c1, c2 = ("#%02x%02x%02x" % _colour(rng) for _ in range(2))
    shapes = "".join(
        f'<circle cx="{rng.uniform(0, width):.0f}" cy="{rng.uniform(0, height):.0f}" r="{rng.uniform(0.05, 0.3) * min(width, height):.0f}" '
        f'fill="#{rng.randrange(1 << 24):06x}" fill-opacity="0.6"/>'
        for _ in range(rng.randint(5, 11))
    )
    size = max(8, min(width, height) // 22)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<defs><linearGradient id="g" x2="0" y2="1"><stop offset="0" stop-color="{c1}"/><stop offset="1" stop-color="{c2}"/>'
        f'</linearGradient></defs><rect width="100%" height="100%" fill="url(#g)"/>{shapes}'
        f'<text x="{size}" y="{height - size}" font-size="{size}" font-family="sans-serif" fill="#fff">{escape(prompt[:200])}</text></svg>'
    ).encode()


def generate(prompt: str, index: int, width: int, height: int, *, transparent: bool = False) -> Image.Image:
    return caption(pattern(seed_of("generate", prompt, index), width, height, transparent=transparent), prompt)


def blur_for(image: Image.Image, step: int, steps: int) -> Image.Image:
    """A partial image for streaming: coarser the earlier it is sent."""
    factor = 2 ** (steps - step + 2)
    width, height = image.size
    small = image.resize((max(1, width // factor), max(1, height // factor)), Image.Resampling.BOX)
    return small.resize(image.size, Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(2))


def open_image(data: bytes) -> tuple[Image.Image, str]:
    """Decodes an upload; returns the image and its format ("PNG", "JPEG" or "WEBP")."""
    try:
        probe = Image.open(io.BytesIO(data))
        fmt = probe.format
        probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # Pillow raises many types for bad data
        raise InvalidImage(str(error)) from None
    if fmt not in INPUT_FORMATS:
        raise InvalidImage(f"unsupported format {fmt}")
    return ImageOps.exif_transpose(image), fmt


def edit(images: list[Image.Image], mask: Image.Image | None, prompt: str, seed: bytes, width: int, height: int) -> Image.Image:
    """The first image, fitted to the size; repainted where the mask is transparent (or, without a mask,
    glazed with the pattern); the other images as thumbnails along the top; the prompt written on it."""
    base = ImageOps.fit(images[0].convert("RGBA"), (width, height), Image.Resampling.BICUBIC)
    paint = pattern(seed, width, height)
    if mask is not None:
        alpha = ImageOps.fit(mask.convert("RGBA"), (width, height), Image.Resampling.BICUBIC).getchannel("A")
        base = Image.composite(base, paint, alpha)
    else:
        base = Image.blend(base, paint, 0.3)
    thumb = max(16, min(width, height) // 6)
    for slot, extra in enumerate(images[1:6]):
        base.paste(ImageOps.fit(extra.convert("RGBA"), (thumb, thumb)), (8 + slot * (thumb + 8), 8))
    return caption(base, prompt)


def variation(image: Image.Image, seed: bytes, width: int, height: int) -> Image.Image:
    """The image fitted to the size, its channels shuffled, mirrored or not, glazed with the pattern."""
    rng = random.Random(seed)
    base = ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.BICUBIC)
    channels = list(base.split())
    rng.shuffle(channels)
    base = Image.merge("RGB", channels)
    if rng.random() < 0.5:
        base = ImageOps.mirror(base)
    return Image.blend(base.convert("RGBA"), pattern(seed, width, height), 0.25)


@dataclass
class ImageJob:
    """What to draw and how to encode it, already checked against the model's rules."""

    kind: str  # "generate" | "edit" | "variation"
    model: str
    gpt: bool  # a GPT image model (usage, base64 only) rather than DALL·E
    prompt: str
    n: int
    width: int
    height: int
    quality: str
    fmt: str
    compression: int
    background: str
    response_format: str
    stream: bool = False
    partial_images: int = 0
    frames: int = 9
    frame_ms: int = 200
    style: str = "vivid"
    user: str | None = None
    inputs: list = field(default_factory=list)  # decoded input images (edits, variations)
    mask: Image.Image | None = None
    seed: bytes = b""
    mark: Callable[[bytes, str, str], bytes] | None = None  # signs the encoded file (app/services/provenance.py)


def draw(job: ImageJob, index: int) -> Image.Image:
    w, h = job.width, job.height
    if job.kind == "edit":
        return edit(job.inputs, job.mask, job.prompt, seed_of(job.seed, index), w, h)
    if job.kind == "variation":
        return variation(job.inputs[0], seed_of(job.seed, index), w, h)
    return generate(job.prompt, index, w, h, transparent=job.background == "transparent")


def render_bytes(job: ImageJob, index: int, image: Image.Image | None = None) -> bytes:
    """Image `index` of the job in its output format (`image` when already drawn, e.g. a partial)."""
    if job.fmt == "svg":
        data = svg(seed_of("generate", job.prompt, index), job.width, job.height, job.prompt)
    elif job.fmt == "gif":
        data = gif([draw(job, index * 100 + frame) for frame in range(job.frames)], job.frame_ms)
    else:
        data = encode(image if image is not None else draw(job, index), job.fmt, compression=job.compression)
    return job.mark(data, job.fmt, job.model) if job.mark is not None else data


_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}
_PALETTES = ("warm amber", "cool teal", "muted pastel", "high-contrast neon", "earthy ochre", "soft monochrome")


def usage(job: ImageJob) -> dict:
    """GPT image usage: text tokens of the prompt, a fixed cost per input image, output by quality and area."""
    text = max(1, len(job.prompt) // 4)
    image_in = sum(194 if max(i.size) <= 512 else 388 for i in job.inputs)
    out = round(_OUTPUT_TOKENS[job.quality] * job.width * job.height / (1024 * 1024)) * job.n
    return {"input_tokens": text + image_in, "input_tokens_details": {"text_tokens": text, "image_tokens": image_in},
            "output_tokens": out, "total_tokens": text + image_in + out,
            "output_tokens_details": {"image_tokens": out, "text_tokens": 0}}


def revised_prompt(job: ImageJob, index: int) -> str:
    palette = _PALETTES[seed_of(job.prompt, index)[0] % len(_PALETTES)]
    look = "vivid, dramatic" if job.style == "vivid" else "natural, understated"
    return f"{job.prompt.strip().rstrip('.')}. Rendered as a {look} digital illustration in {palette} tones, with a balanced composition and soft lighting."
