"""Content provenance: the images this server draws carry a signed marker, and `/v1/content_provenance_checks`
recognises it.

OpenAI's images carry a C2PA manifest (metadata) and a SynthID watermark (in the pixels). Here the offline
image model's output carries one metadata marker in each format's own place for text — a PNG `tEXt` chunk,
a JPEG `COM` segment, a WebP RIFF chunk, a GIF comment extension, an SVG comment — holding the model and an
HMAC-SHA256, keyed by a server secret, over it and every other byte of the file. It carries no generation
time (`generated_at` is null), so the same request still gives the same bytes.
A check strips the marker and recomputes the HMAC: a file with no marker is `not_present`, one whose bytes
(pixels or anything else) changed after marking is `invalid`; only an intact one is `detected`. It is
reported as the `c2pa` result; no pixel watermark is emulated, so `synthid` is always `not_detected`.

The secret is UNDERSTUDY_PROVENANCE_SECRET, or one made at first start in `<data dir>/provenance.key`
(processes sharing a database but not a data dir need the setting).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import struct
import time
import zlib
from pathlib import Path

from app.core.errors import invalid_request

MAGIC = b"understudy-provenance"
ISSUER = "Understudy"
_PNG = b"\x89PNG\r\n\x1a\n"
_SVG_MARK = re.compile(rb"<!--understudy-provenance:([^>]*)-->\s*$")


def load_secret(configured: str, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "provenance.key"
    if not path.exists():  # written whole, then linked in: a process starting at the same time reads the winner's key
        tmp = data_dir / f".provenance.key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


# ---- where each format keeps the marker: insert(data, payload) and extract(data) -> (rest, payload) ----

def _png_insert(data: bytes, payload: bytes) -> bytes:
    body = MAGIC + b"\x00" + payload
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return data[:-12] + chunk + data[-12:]  # before IEND


def _png_extract(data: bytes):
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if kind == b"tEXt" and data[pos + 8:pos + 8 + len(MAGIC) + 1] == MAGIC + b"\x00":
            return data[:pos] + data[end:], data[pos + 8 + len(MAGIC) + 1:pos + 8 + length]
        pos = end
    return data, None


def _jpeg_insert(data: bytes, payload: bytes) -> bytes:
    body = MAGIC + b":" + payload
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]  # right after SOI


def _jpeg_extract(data: bytes):
    if data[2:4] == b"\xff\xfe":
        length = struct.unpack(">H", data[4:6])[0]
        body = data[6:4 + length]
        if body.startswith(MAGIC + b":"):
            return data[:2] + data[4 + length:], body[len(MAGIC) + 1:]
    return data, None


def _webp_insert(data: bytes, payload: bytes) -> bytes:
    body = MAGIC + b":" + payload
    chunk = b"UNDP" + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")
    out = data + chunk
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def _webp_extract(data: bytes):
    pos = 12
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        end = pos + 8 + length + (length % 2)
        if kind == b"UNDP" and data[pos + 8:pos + 9 + len(MAGIC)] == MAGIC + b":":
            rest = data[:pos] + data[end:]
            return rest[:4] + struct.pack("<I", len(rest) - 8) + rest[8:], data[pos + 9 + len(MAGIC):pos + 8 + length]
        pos = end
    return data, None


def _gif_insert(data: bytes, payload: bytes) -> bytes:
    body = MAGIC + b":" + payload
    blocks = b"".join(bytes([len(body[i:i + 255])]) + body[i:i + 255] for i in range(0, len(body), 255))
    return data[:-1] + b"\x21\xfe" + blocks + b"\x00" + data[-1:]  # a comment extension before the trailer


def _gif_extract(data: bytes):
    start = data.rfind(MAGIC + b":") - 3  # the extension's introducer, label and first block's length
    if start < 0 or data[start:start + 2] != b"\x21\xfe" or not data.endswith(b";"):
        return data, None
    pos, body = start + 2, b""
    while pos < len(data) and data[pos]:
        body += data[pos + 1:pos + 1 + data[pos]]
        pos += 1 + data[pos]
    if pos + 2 != len(data) or not body.startswith(MAGIC + b":"):
        return data, None
    return data[:start] + data[-1:], body[len(MAGIC) + 1:]


def _svg_insert(data: bytes, payload: bytes) -> bytes:
    return data.rstrip() + b"\n<!--understudy-provenance:" + payload + b"-->\n"


def _svg_extract(data: bytes):
    match = _SVG_MARK.search(data)
    if match is None:
        return data, None
    return data[:match.start()].rstrip(), match[1]


_FORMATS = {"png": (_png_insert, _png_extract), "jpeg": (_jpeg_insert, _jpeg_extract), "webp": (_webp_insert, _webp_extract),
            "gif": (_gif_insert, _gif_extract), "svg": (_svg_insert, _svg_extract)}


def sniff(data: bytes) -> str | None:
    """An image format we mark, "audio" for an audio file, or None."""
    head = data[:64]
    if head.startswith(_PNG):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "svg"
    if (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:3] == b"ID3" or head[:4] in (b"fLaC", b"OggS") \
            or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0) or head[4:8] == b"ftyp":
        return "audio"
    return None


class Provenance:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, model: str, generated_at: str, rest: bytes) -> str:
        return hmac.new(self._secret, b"v1\x00" + model.encode() + b"\x00" + generated_at.encode() + b"\x00" + rest, hashlib.sha256).hexdigest()

    def mark(self, data: bytes, fmt: str, model: str) -> bytes:
        """The image with its signed marker (formats we do not know are returned as they are)."""
        if fmt not in _FORMATS or sniff(data) != fmt:
            return data
        generated_at = ""  # no time: the offline model's files stay deterministic (same request, same bytes)
        model = re.sub(r"[^A-Za-z0-9._:-]", "", model)[:128]
        payload = f"v1;{model};{generated_at};{self._mac(model, generated_at, data)}".encode()
        return _FORMATS[fmt][0](data, payload)

    def check(self, data: bytes) -> dict:
        kind = sniff(data)
        if kind is None:
            raise invalid_request("Unsupported file format. Provide an image (PNG, JPEG, WebP, GIF) or an audio file.",
                                  param="file", code="invalid_file_format")
        synthid = {"type": "synthid", "outcome": "not_detected", "model": None, "generated_at": None}
        body = {"object": "content_provenance_check", "created_at": int(time.time())}
        if kind == "audio":
            return {**body, "results": [synthid]}
        c2pa = {"type": "c2pa", "outcome": "not_detected", "validation_state": "not_present", "issuer": None, "model": None, "generated_at": None}
        try:
            rest, payload = _FORMATS[kind][1](data)
        except (struct.error, IndexError):
            rest, payload = data, None
        if payload is not None:
            fields = payload.decode("ascii", "replace").split(";")
            valid = len(fields) == 4 and fields[0] == "v1" and hmac.compare_digest(fields[3], self._mac(fields[1], fields[2], rest))
            c2pa["validation_state"] = "valid" if valid else "invalid"
            if valid:
                c2pa.update(outcome="detected", issuer=ISSUER, model=fields[1], generated_at=fields[2] or None)
        return {**body, "results": [c2pa, synthid]}
