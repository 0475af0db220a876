"""The pipes between the server and the sandbox's init: the bundle it unpacks (code and input files, an
in-memory file), the result pipe it answers on (a JSON line, then the files' bytes), and the code's
output, kept as head and tail. Everything coming back is the sandbox's side: bounded, and checked."""
from __future__ import annotations

import asyncio
import json
import os

LOG_HEAD, LOG_TAIL = 15_000, 5_000  # bytes of output kept from the start and the end (the traceback)


def parse_results(data: bytes, max_files: int, safe_name) -> tuple[dict | None, list[tuple[str, bytes]]]:
    """The init's JSON line and the files after it; whatever does not add up is dropped (it is the code's side)."""
    line, sep, rest = bytes(data).partition(b"\n")
    try:
        header = json.loads(line) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict):
        return None, []
    files, offset = [], 0
    for entry in header.get("files") or []:
        try:
            name, size = safe_name(entry[0]), int(entry[1])
        except (ValueError, TypeError, IndexError):
            break
        if size < 0 or offset + size > len(rest) or len(files) >= max_files:
            break
        files.append((name, rest[offset:offset + size]))
        offset += size
    return header, files


def bundle(code: str, inputs: dict[str, bytes]):
    """What the init unpacks: a JSON line, the code, the files' bytes (sandbox_init._unpack)."""
    source = code.encode("utf-8", "replace")
    header = {"code": len(source), "files": [[name, len(data)] for name, data in inputs.items()]}
    return [json.dumps(header).encode() + b"\n", source, *inputs.values()]


def memfd(chunks) -> int:
    """An in-memory file holding the chunks, read from its start by whoever inherits it."""
    fd = os.memfd_create("understudy-sandbox")
    try:
        with open(fd, "wb", closefd=False) as f:
            for chunk in chunks:
                f.write(chunk)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


class ResultPipe(asyncio.Protocol):
    """The init's result pipe, read up to a cap (past it the pipe is closed: the files were not ours to keep)."""

    def __init__(self, loop, cap: int) -> None:
        self.data, self.cap, self.transport = bytearray(), cap, None
        self.closed = loop.create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if len(self.data) + len(data) > self.cap:
            self.close()
            return
        self.data += data

    def connection_lost(self, exc) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Output(asyncio.SubprocessProtocol):
    """The launcher's process: its exit, and the head and tail of its output (the traceback is at the end).

    A protocol rather than `asyncio.subprocess.Process`, whose wait() also waits for the pipe to close,
    which a process that escaped the group could hold open for ever."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.exited, self.closed = loop.create_future(), loop.create_future()
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.total += len(data)
        room = LOG_HEAD - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        del self.tail[:-LOG_TAIL]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (self.head + self.tail).decode("utf-8", "replace")
        return (f"{self.head.decode('utf-8', 'replace')}\n[... {omitted} bytes of output truncated ...]\n"
                f"{self.tail.decode('utf-8', 'replace')}")
