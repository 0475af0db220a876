"""A multipart/form-data body as OpenAI's SDKs send one: what an upstream is sent for image edits and
variations and for transcriptions, rebuilt from the checked params and the uploaded files.

Why rebuilt rather than the client's bytes passed on: the form was read (and bounded) part by part
to check it, so the original body is gone; and a body built once as bytes can be sent again when an
attempt is retried. Field encoding mirrors how the controllers read forms (app/api/images.py
`read_form`): lists as `name[]`, objects as `name[key]`, booleans as `true`/`false`.
"""
from __future__ import annotations

import json
import secrets
from typing import Any, Iterator

from app.inference.base import MediaFile


def _fields(name: str, value: Any) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, bool):
        yield name, "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, dict):  # a list of objects has no bracket form every server reads: JSON
                yield f"{name}[]", json.dumps(item)
            else:
                yield from _fields(f"{name}[]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _fields(f"{name}[{key}]", item)
    else:
        yield name, str(value)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def form_body(params: dict, files: list[MediaFile]) -> tuple[bytes, str]:
    """The body and its content type (with the boundary). A field given several files is sent as
    `name[]`, as the SDK sends a list of images."""
    boundary = "understudy-" + secrets.token_hex(16)
    out = bytearray()
    for key, value in params.items():
        for name, text in _fields(key, value):
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
            out += text.encode() + b"\r\n"
    counts: dict[str, int] = {}
    for file in files:
        counts[file.field] = counts.get(file.field, 0) + 1
    for file in files:
        name = f"{file.field}[]" if counts[file.field] > 1 else file.field
        filename = _quoted(file.filename or file.field)
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; filename="{filename}"\r\n'
                f"Content-Type: {file.content_type or 'application/octet-stream'}\r\n\r\n").encode()
        out += file.data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"
