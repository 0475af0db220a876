"""Record and replay of upstream exchanges (UNDERSTUDY_RECORD / UNDERSTUDY_REPLAY).

Why: a test suite that ran once against a real provider can run again with no network, no key and no bill,
getting the same answers. Every upstream request goes through `http.send_with_retries`, so the `Tape` sits
there: it sees the final answer after retries (retries are invisible to callers, so they are not
recorded), streams included, byte-for-byte relays included.

A cassette is `<hash>.json` in the directory, the hash taken over the method, the upstream path and the
normalised body. It holds a list of exchanges: the n-th identical request of a process gets the n-th, the
last one repeats. Normalising makes a stateful flow hash the same run after run: JSON with sorted keys, and
the random ids Understudy mints (`msg_…`, `call_…`, …) replaced by placeholders in order of first
appearance. Request headers (credentials above all) are never hashed and never stored, beyond a few
content-negotiation ones.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from multidict import CIMultiDict

from app.settings import REPLAY_MISS_MODES as MISS_MODES


# Prefixes of the ids Understudy mints (app/core/ids.py callers, the item prefixes of responses and
# conversations, the translators' toolu_). Longest first so `batch_req_` wins over `batch_`.
_PREFIXES = sorted({
    "call_", "msg_", "resp_", "run_", "step_", "thread_", "file-", "asst_", "vs_", "vsfb_", "batch_", "batch_req_", "msgbatch_",
    "chatcmpl-", "cmpl-", "modr-", "toolu_", "conv_", "upload_", "part_", "ftjob-", "ftevent-", "ftckpt_", "item_",
    "fc_", "fco_", "fs_", "ws_", "ig_", "cu_", "cuo_", "rs_", "ctc_", "ctco_", "cmp_", "ci_", "mcpl_", "mcpr_", "mcpa_", "cntr_", "cfile_",
    "sh_", "sho_", "skill_", "skillver_", "sess_", "event_", "eval_", "evalrun_", "outputitem_",
    "cp_", "cons_", "voice_", "cksess_", "cthr_", "cthi_",  # checkpoint permissions, voices, ChatKit
}, key=len, reverse=True)
# A prefix then at least 16 id characters (new_id makes 24; toolu_ ids are 24 hex), not inside a longer word.
_ID = re.compile(r"(?<![A-Za-z0-9_-])(" + "|".join(map(re.escape, _PREFIXES)) + r")[A-Za-z0-9]{16,}(?![A-Za-z0-9_-])")

# Response headers worth keeping: what callers read (type, retry hints, request ids, rate limits); not
# the ones naming an organisation or project.
_KEEP = ("content-type", "retry-after", "retry-after-ms", "x-request-id", "request-id", "x-should-retry", "openai-processing-ms", "openai-version")
_KEEP_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")  # not openai-organization and the like
# Request headers stored for a reader's benefit (never hashed): none of them carries a credential.
_REQUEST_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta")
_SECRET_QUERY = {"key", "api_key", "api-key"}  # Gemini-style keys in the query string

log = logging.getLogger(__name__)


class CassetteMiss(Exception):
    """Replay found no recorded exchange for a request (the provider turns it into a 400 `cassette_miss`)."""

    def __init__(self, key: str, method: str, path: str) -> None:
        self.key, self.method, self.path = key, method, path
        super().__init__(f"No recorded upstream exchange matches this request (cassette miss): {method} {path}, hash {key}. "
                         "Record it with UNDERSTUDY_RECORD, or set UNDERSTUDY_REPLAY_MISS=passthrough to send misses upstream.")


class Request:
    """A request as the cassette sees it: its hash and what is written about it."""

    def __init__(self, method: str, url: str, headers: dict[str, str] | None, content: bytes | None) -> None:
        parts = urlsplit(url)
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in _SECRET_QUERY])
        self.method, self.path = method.upper(), parts.path + (f"?{query}" if query else "")
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        content_type = lowered.get("content-type", "")
        text, self.body = normalise_body(content or b"", content_type)
        self.key = hashlib.sha256(f"{self.method} {self.path}\n{text}".encode()).hexdigest()[:32]
        self.headers = {k: v.split(";")[0] if k == "content-type" and "boundary=" in v else v
                        for k, v in lowered.items() if k in _REQUEST_HEADERS}

    def describe(self) -> dict:
        return {"method": self.method, "path": self.path, "headers": self.headers, "body": self.body}


def normalise_body(content: bytes, content_type: str = "") -> tuple[str, Any]:
    """(the text hashed, what the cassette shows). JSON: sorted keys, minted ids as placeholders. Anything
    else (multipart forms): the bytes, with the form's random boundary taken out, shown as a digest."""
    if not content:
        return "", None
    try:
        value = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        boundary = re.search(r"boundary=([^;\s]+)", content_type)
        if boundary:
            content = content.replace(boundary.group(1).strip('"').encode(), b"BOUNDARY")
        digest = hashlib.sha256(content).hexdigest()
        return f"sha256:{digest}", {"sha256": digest, "bytes": len(content)}
    text = placeholders(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    return text, json.loads(text)


def placeholders(text: str) -> str:
    """Each distinct minted id becomes `<prefix><n>` (n: order of first appearance), so the same flow with
    other random ids reads the same, and two different ids in one request stay different."""
    seen: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        return seen.setdefault(match.group(0), f"{match.group(1)}<{len(seen) + 1}>")
    return _ID.sub(swap, text)


def kept_headers(headers) -> dict[str, str]:
    lowered = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in lowered if k in _KEEP or k.startswith(_KEEP_PREFIXES)}


def _pieces(chunks: list[bytes]) -> dict:
    """Bytes as JSON: text when every piece decodes (a chunk may split a UTF-8 character), else base64."""
    try:
        return {"encoding": "utf-8", "chunks": [c.decode("utf-8") for c in chunks]}
    except UnicodeDecodeError:
        return {"encoding": "base64", "chunks": [base64.b64encode(c).decode("ascii") for c in chunks]}


def _unpieces(exchange: dict) -> list[bytes]:
    raw = exchange.get("chunks") or []
    if exchange.get("encoding") == "base64":
        return [base64.b64decode(c) for c in raw]
    return [c.encode("utf-8") for c in raw]


class ReplayedResponse:
    """A recorded answer with the face of `http.UpstreamResponse`; a stream is handed over chunk by chunk,
    and a stream that broke when recorded breaks again at the same place."""

    def __init__(self, exchange: dict, stream: bool) -> None:
        self.status_code = int(exchange["status"])
        self.headers = CIMultiDict(exchange.get("headers") or {})
        self._chunks = _unpieces(exchange)
        self._broken = exchange.get("broken")
        self.content = None if stream or self._broken else b"".join(self._chunks)

    async def aread(self) -> bytes:
        if self._broken:
            raise aiohttp.ClientPayloadError(self._broken)
        return b"".join(self._chunks)

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
            await asyncio.sleep(0)  # as a network would: other tasks run between two chunks
        if self._broken:
            raise aiohttp.ClientPayloadError(self._broken)

    async def aclose(self) -> None:
        pass


class RecordingResponse:
    """A live streamed answer passed through untouched, its bytes copied to the cassette once it ends or
    is closed. Saved on `aclose()` too: a consumer may stop at `[DONE]` before the stream's end, and every
    caller closes the response (an abandoned generator would only be finalised later, if at all)."""

    def __init__(self, tape: "Tape", request: Request, response) -> None:
        self._tape, self._request, self._inner = tape, request, response
        self.status_code, self.headers = response.status_code, response.headers
        self._received: list[bytes] = []
        self._broken: str | None = None
        self._written = False

    @property
    def content(self) -> bytes | None:
        return self._inner.content

    async def aread(self) -> bytes:
        body = await self._inner.aread()
        self._received = [body]
        await self._finish()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner.chunks():
                self._received.append(chunk)
                yield chunk
        except aiohttp.ClientPayloadError as exc:
            self._broken = f"{type(exc).__name__}: {exc}"
            await self._finish()
            raise
        await self._finish()

    async def _finish(self) -> None:
        if self._written:
            return
        self._written = True
        rest, complete = self._inner.buffered()  # arrived, not read: the rest of a stream left at [DONE]
        exchange = {"status": self.status_code, "headers": kept_headers(self.headers), **_pieces(self._received + ([rest] if rest else []))}
        if self._broken:
            exchange["broken"] = self._broken
        elif not complete:
            exchange["complete"] = False  # closed before the upstream's end: what arrived by then
        await self._tape.save(self._request, exchange)

    async def aclose(self) -> None:
        try:
            await self._finish()
        finally:
            await self._inner.aclose()


class Tape:
    """The process's cassettes: replays from `replay_dir`, records into `record_dir` (either or both)."""

    def __init__(self, record_dir: Path | None = None, replay_dir: Path | None = None, miss: str = "error") -> None:
        if miss not in MISS_MODES:
            raise ValueError(f"UNDERSTUDY_REPLAY_MISS must be one of {', '.join(MISS_MODES)}, not {miss!r}")
        if replay_dir is not None and not replay_dir.is_dir():
            raise ValueError(f"UNDERSTUDY_REPLAY: {str(replay_dir)!r} is not a directory of cassettes (make them with UNDERSTUDY_RECORD)")
        if record_dir is not None:
            try:
                record_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"UNDERSTUDY_RECORD: cannot make the directory {str(record_dir)!r}: {exc}") from None
            if not os.access(record_dir, os.W_OK):
                raise ValueError(f"UNDERSTUDY_RECORD: the directory {str(record_dir)!r} is not writable")
        self.record_dir, self.replay_dir, self.miss = record_dir, replay_dir, miss
        self._played: dict[str, int] = {}  # per hash: identical requests replayed so far
        self._loaded: dict[str, list[dict]] = {}
        self._recorded: dict[str, list[dict]] = {}  # per hash: this process's recording, written whole each time
        self._write_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings) -> "Tape | None":
        record, replay = getattr(settings, "record", ""), getattr(settings, "replay", "")
        if not record and not replay:
            return None
        return cls(Path(record) if record else None, Path(replay) if replay else None, getattr(settings, "replay_miss", "error") or "error")

    async def exchange(self, method: str, url: str, headers: dict[str, str] | None, content: bytes | None, stream: bool,
                       network: Callable[[], Awaitable[Any]]):
        request = Request(method, url, headers, content)
        if self.replay_dir is not None:
            turn = self._played.get(request.key, 0)
            self._played[request.key] = turn + 1  # counted before any await: concurrent requests keep their order
            recorded = await self._load(request.key)
            if recorded:
                return ReplayedResponse(recorded[min(turn, len(recorded) - 1)], stream)
            if self.miss == "error":
                raise CassetteMiss(request.key, request.method, request.path)
        response = await network()
        if self.record_dir is None:
            return response
        if not stream:
            await self.save(request, {"status": response.status_code, "headers": kept_headers(response.headers), **_pieces([response.content or b""])})
            return response
        return RecordingResponse(self, request, response)

    async def _load(self, key: str) -> list[dict]:
        if key not in self._loaded:
            path = self.replay_dir / f"{key}.json"
            data = await asyncio.to_thread(_read_json, path)
            if data is None:
                return []  # not remembered: a passthrough may record it into this directory
            self._loaded[key] = list(data.get("exchanges") or [])
        return self._loaded[key]

    async def save(self, request: Request, exchange: dict) -> None:
        """Written even when the caller is cancelled meanwhile: a client that leaves a stream at `[DONE]`
        (the SDK closes there) cancels the relay before the upstream's body has ended, and this save
        comes from that relay's cleanup."""
        await asyncio.shield(self._save(request, exchange))

    async def _save(self, request: Request, exchange: dict) -> None:
        async with self._write_lock:  # the n-th answer lands n-th, and one writer per file at a time
            exchanges = self._recorded.setdefault(request.key, [])
            exchanges.append(exchange)
            document = {"hash": request.key, "request": request.describe(), "exchanges": exchanges}
            text = json.dumps(document, indent=1, ensure_ascii=False)
            try:
                await asyncio.to_thread(_write_atomically, self.record_dir / f"{request.key}.json", text)
            except OSError:  # the caller still gets its answer; the log says what the cassettes lack
                log.exception("could not write the cassette %s for %s %s", request.key, request.method, request.path)
            if self.replay_dir == self.record_dir:
                self._loaded[request.key] = list(exchanges)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    """A temp file in the same directory, then a rename: a reader never sees half a cassette."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
