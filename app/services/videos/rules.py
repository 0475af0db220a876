"""The request rules of /v1/videos: models, sizes, durations, prompts and reference images, refused with
OpenAI's words and the param they concern. Pure functions, shared by create, remix, edits and extensions."""
from __future__ import annotations

import base64
import binascii
import io

from app.core.errors import invalid_request

MODELS = ("sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06", "sora-2-2025-12-08")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SECONDS = ("4", "8", "12")
EXTENSION_SECONDS = ("4", "8", "12", "16", "20")
MAX_TOTAL_SECONDS = 60  # an extension of an extension…: the stitched clip is rendered whole, so it is bounded
PROMPT_MAX = 32000
MAX_REFERENCE_PIXELS = 4096 * 4096  # a reference is decoded whole and scaled to the video's size
DEFAULTS = {"model": "sora-2", "seconds": "4", "size": "720x1280"}


def _listed(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def choice(value, allowed, param: str) -> str:
    if value not in allowed:
        raise invalid_request(f"Invalid value: '{value}'. Supported values are: {_listed(allowed)}.", param=param, code="invalid_value")
    return value


def prompt(value, param: str = "prompt") -> str:
    if value is None:
        raise invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if not isinstance(value, str):
        raise invalid_request(f"Invalid type for '{param}': expected a string.", param=param, code="invalid_type")
    if not value:
        raise invalid_request(f"Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty string instead.",
                              param=param, code="empty_string")
    if len(value) > PROMPT_MAX:
        raise invalid_request(f"Invalid '{param}': string too long. Expected a string with maximum length {PROMPT_MAX}, but got a string with length {len(value)} instead.",
                              param=param, code="string_above_max_length")
    return value


def seconds(value, allowed=SECONDS, param: str = "seconds") -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return choice(value, allowed, param)


def check_image(data: bytes, param: str, limit: int) -> bytes:
    """A reference image: at most `limit` bytes, and an image pillow can open (png, jpeg, webp…)."""
    if len(data) > limit:
        raise invalid_request(f"The file '{param}' is too large: {len(data)} bytes; the limit is {limit} bytes.", param=param, code="file_too_large")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = image.width * image.height
            image.verify()
    except Exception:
        raise invalid_request(f"Invalid '{param}': the file is not a supported image (png, jpeg or webp).", param=param, code="invalid_image_format") from None
    if pixels > MAX_REFERENCE_PIXELS:
        raise invalid_request(f"Invalid '{param}': the image is too large ({pixels} pixels; at most {MAX_REFERENCE_PIXELS}).", param=param, code="image_too_large")
    return data


def data_url(url: str, param: str, limit: int) -> bytes:
    """The bytes of a `data:image/…;base64,` URL. Other URLs are not fetched (this server reaches out to
    no address a request names)."""
    if not url.startswith("data:"):
        raise invalid_request(f"Invalid '{param}': only base64 data URLs (data:image/png;base64,…) are supported for reference images here; "
                              "upload the image as a file instead.", param=param, code="invalid_value")
    head, _, payload = url.partition(",")
    if not head.startswith("data:image/") or not head.endswith(";base64"):
        raise invalid_request(f"Invalid '{param}': expected a base64-encoded image data URL.", param=param, code="invalid_value")
    if len(payload) > limit * 4 // 3 + 4:
        raise invalid_request(f"The file '{param}' is too large; the limit is {limit} bytes.", param=param, code="file_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_request(f"Invalid '{param}': the data URL is not valid base64.", param=param, code="invalid_value") from None


def nearest_size(size: str) -> str:
    """An uploaded clip's resolution mapped to the supported size of the same orientation."""
    width, height = (int(v) for v in size.split("x"))
    return "1280x720" if width >= height else "720x1280"
