"""Image data URLs in a request, checked as OpenAI checks them: broken base64 is a 400 naming the field,
before any model sees the request (the offline model would otherwise answer 200)."""
from __future__ import annotations

import base64
import binascii

from app.core.errors import invalid_request


def _check(url, param: str) -> None:
    if not isinstance(url, str) or not url.startswith("data:"):
        return
    header, comma, payload = url.partition(",")
    if not header.endswith(";base64"):
        return
    try:
        if not comma:
            raise ValueError
        base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        raise invalid_request(
            f"Invalid '{param}'. Expected a base64-encoded data URL with an image MIME type "
            f"(e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got an invalid base64-encoded value.",
            param=param, code="invalid_value") from None


def _parts(messages, key: str):
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict):
                    yield f"{key}[{i}].content[{j}]", part


def check_chat_images(messages) -> None:
    for where, part in _parts(messages, "messages"):
        if part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
            _check(part["image_url"].get("url"), f"{where}.image_url.url")


def check_response_images(input) -> None:
    for where, part in _parts(input, "input"):
        if part.get("type") == "input_image":
            _check(part.get("image_url"), f"{where}.image_url")
