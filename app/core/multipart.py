"""Streaming multipart/form-data: parts are read as the body arrives, never the whole body in memory.

Litestar's own form parsing buffers the entire request, which is wrong for a 512 MB file. This feeds
python-multipart's push parser from the request stream and hands out parts one at a time:

    async for part in iter_parts(content_type, bounded(request, limit)):
        if part.filename is None: value = await part.text()
        else: async for chunk in part: ...

`bounded` caps the whole body (a Content-Length over it is refused before a byte is read), and a
`Spool` keeps a file part in memory up to a small threshold, on disk past it.
"""
from __future__ import annotations

import asyncio
import tempfile
from collections import deque
from typing import AsyncIterable, AsyncIterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.errors import APIError, invalid_request

_FIELD_LIMIT = 1024 * 1024  # a non-file field larger than this is not a parameter


class Part:
    def __init__(self, reader: "_Reader", headers: dict[str, str]) -> None:
        self._reader = reader
        self.headers = headers
        _, options = parse_options_header(headers.get("content-disposition", ""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        # A filename is only ever a label: strip any path a client put in it.
        self.filename = None if filename is None else safe_filename(filename.decode("utf-8", "replace"))
        self.content_type = headers.get("content-type")
        self.finished = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._reader.part_chunks(self)

    async def read(self, limit: int = _FIELD_LIMIT) -> bytes:
        data = bytearray()
        async for chunk in self:
            data += chunk
            if len(data) > limit:
                raise invalid_request(f"The form field '{self.name}' is too large.", param=self.name)
        return bytes(data)

    async def text(self) -> str:
        return (await self.read()).decode("utf-8", "replace")


MAX_FILENAME = 255


def safe_filename(name: str) -> str:
    """A client's filename is a label: its last path component, no NULs, at most 255 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    return name.strip()[:MAX_FILENAME] or "upload"


class _Reader:
    """Pulls body chunks on demand and turns the parser's callbacks into a queue of events."""

    def __init__(self, boundary: bytes, body: AsyncIterable[bytes]) -> None:
        self._body = aiter(body)
        self._events: deque = deque()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._eof = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": lambda: self._events.append(("part", dict(self._headers))),
                "on_part_data": lambda d, s, e: self._events.append(("data", bytes(d[s:e]))),
                "on_part_end": lambda: self._events.append(("end", None)),
                "on_end": lambda: self._events.append(("eof", None)),
            },
        )

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_end(self) -> None:
        # latin-1 keeps the raw bytes: parse_options_header() re-encodes values as latin-1, and Part decodes
        # them as UTF-8 (what browsers and httpx send), so decoding as UTF-8 here would mangle non-ASCII names.
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value.decode("latin-1")
        self._header_field.clear()
        self._header_value.clear()

    async def _next_event(self):
        while not self._events:
            if self._eof:
                raise invalid_request("The multipart body ended before its closing boundary.")
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                self._eof = True
                self._parser.finalize()
                continue
            try:
                self._parser.write(chunk)
            except MultipartParseError as error:
                raise invalid_request(f"Malformed multipart body: {error}.") from None
        return self._events.popleft()

    async def parts(self) -> AsyncIterator[Part]:
        current: Part | None = None
        while True:
            if current is not None and not current.finished:
                async for _ in current:  # the caller skipped the rest of this part
                    pass
            kind, value = await self._next_event()
            if kind == "eof":
                return
            if kind == "part":
                current = Part(self, value)
                yield current

    async def part_chunks(self, part: Part) -> AsyncIterator[bytes]:
        while not part.finished:
            kind, value = await self._next_event()
            if kind == "data":
                if value:
                    yield value
            elif kind == "end":
                part.finished = True
            else:
                raise invalid_request("Malformed multipart body.")


def boundary_of(content_type: str | None) -> bytes:
    media_type, options = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise invalid_request("This endpoint expects a multipart/form-data body.")
    return options[b"boundary"]


def iter_parts(content_type: str | None, body: AsyncIterable[bytes]) -> AsyncIterator[Part]:
    return _Reader(boundary_of(content_type), body).parts()


def body_too_large(limit: int) -> APIError:
    return APIError(f"Request body too large: this endpoint accepts at most {limit} bytes.", status_code=413, code="request_too_large")


# What a form adds around its file: boundaries, part headers, the other fields.
FORM_OVERHEAD = 1024 * 1024


async def bounded(request, limit: int) -> AsyncIterator[bytes]:
    """The request's body as it arrives, refused (413) as soon as it passes `limit` bytes."""
    error = body_too_large(limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise error
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise error
        yield chunk


SPOOL_THRESHOLD = 1024 * 1024
_WRITE_BATCH = 1024 * 1024


class Spool:
    """One file part's bytes: in memory up to `threshold`, then in an anonymous temporary file (written
    off the event loop, a batch at a time). `close()` frees either."""

    def __init__(self, threshold: int = SPOOL_THRESHOLD) -> None:
        self._threshold = threshold
        self._pending = bytearray()
        self._file = None
        self.size = 0

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._pending += chunk
        if self._file is None and len(self._pending) <= self._threshold:
            return
        if len(self._pending) >= _WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._file is None:
            self._file = await asyncio.to_thread(tempfile.TemporaryFile)
        data, self._pending = bytes(self._pending), bytearray()
        await asyncio.to_thread(self._file.write, data)

    async def read(self) -> bytes:
        if self._file is None:
            return bytes(self._pending)
        if self._pending:
            await self._flush()

        def read_all() -> bytes:
            self._file.seek(0)
            return self._file.read()
        return await asyncio.to_thread(read_all)

    def close(self) -> None:
        self._pending = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
