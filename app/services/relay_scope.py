"""Which ids a tenant may name in a body relayed to an upstream, and which ids the upstream's answers
bind to it.

The upstream sees one key, ours, for every tenant: whatever it stores (a response and its items, a code
container, a chat audio reply) answers any relayed request that names its id. So before a body is
relayed, every id in it that the upstream would look up is checked against the tenant: it must have
been minted in that tenant's own relayed answers (bound as they pass by, `watch`) or name an object the
tenant holds here (a response, conversation, file or vector store of this server, unknown upstream and
so harmless). Another tenant's id, or an unknown one, is OpenAI's 404 and the upstream is not contacted.
Ids no tenant can own through this server (the upstream account's prompt templates, Gemini cached
contents and uploaded files) are refused outright.

Input items that carry their own content are labels rather than lookups (Codex numbers its messages
with ids of its own): they are refused only when another tenant's answer minted that id. An item that
is fetched by id (`item_reference`, a bare `{"id"}`, a reasoning item without its encrypted content)
must be the tenant's. What a body names and an answer mints is read in app/services/relay_refs.py.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from typing import AsyncIterator

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from app.inference.base import RelayResponse
from app.services.relay_refs import MINTING, Minting, Ref, not_found, response_minted
from app.services.responses.store import ResponseStore
from storage.db import Database
from storage.models import Conversation, ConversationItem, File, RelayedId, Response, ResponseItem, VectorStore
from storage.prepared import Prepared

log = logging.getLogger("understudy.relay_scope")

_JSON_LIMIT = 8 * 1024 * 1024  # a relayed JSON answer is parsed for its ids up to this size
_HEAD = 8192  # beyond it, the response id is read from the first bytes (it comes first)
_FRAME_LIMIT = 1024 * 1024  # a longer SSE frame is skipped (the frames that mint ids are small)
_ID_LIMIT = 128
_CHUNK = 500  # ids per IN (...) query
_RESPONSE_ID = re.compile(rb'^\s*\{\s*"id"\s*:\s*"(resp_[A-Za-z0-9_\-]+)"')
_FRAME_END = re.compile(rb"\r?\n\r?\n")

_relayed, _responses = RelayedId.__table__, Response.__table__
_INSERT = Prepared(insert(_relayed).values({c: bindparam(c) for c in ("id", "tenant_id", "kind", "created_at")}))
# What a tenant holds, by the kind of id a relayed body names.
_OWNED_IN = {
    "response": (_responses,),
    "conversation": (Conversation.__table__,),
    "item": (_relayed, ResponseItem.__table__, ConversationItem.__table__),
    "container": (_relayed,),
    "audio": (_relayed,),
    "file": (File.__table__,),
    "vector_store": (VectorStore.__table__,),
}


class _Frames:
    """Splits an SSE byte stream into frames, keeping only an unfinished one (bounded)."""

    def __init__(self, minting: Minting) -> None:
        self._minting, self._rest, self._skipping = minting, b"", False

    def feed(self, chunk: bytes) -> list[dict]:
        parts = _FRAME_END.split(self._rest + chunk)
        self._rest = parts.pop()
        if self._skipping and parts:
            parts.pop(0)  # the end of a frame too long to keep
            self._skipping = False
        if len(self._rest) > _FRAME_LIMIT:
            self._rest, self._skipping = b"", True
        events = []
        pattern, head = self._minting.frames, self._minting.head
        for frame in parts:
            if not (pattern.search(frame, 0, head) if head else pattern.search(frame)):
                continue
            data = b"\n".join(line[5:].strip() for line in frame.splitlines() if line.startswith(b"data:"))
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


class RelayScope:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._response_rows = ResponseStore(db)  # a relayed response's id is a `responses` row with status `relayed`

    # ---- before relaying ----

    async def check(self, tenant_id: str, refs: list[Ref]) -> None:
        """Raises OpenAI's 404 for the first id the tenant may not name (before anything is sent)."""
        if not refs:
            return
        for ref in refs:
            if ref.kind not in _OWNED_IN:
                raise not_found(ref)
        wanted: dict[str, set[str]] = defaultdict(set)
        for ref in refs:
            if ref.strict:
                wanted[ref.kind].add(ref.id)
        owned = {kind: await self._owned(tenant_id, kind, ids) for kind, ids in wanted.items()}
        loose = {ref.id for ref in refs if not ref.strict}
        foreign = await self._foreign(tenant_id, loose) if loose else set()
        for ref in refs:
            if (ref.strict and ref.id not in owned[ref.kind]) or (not ref.strict and ref.id in foreign):
                raise not_found(ref)

    async def _owned(self, tenant_id: str, kind: str, ids: set[str]) -> set[str]:
        found: set[str] = set()
        for table in _OWNED_IN[kind]:
            for chunk in _chunks(ids - found):
                rows = await self._db.fetch_all(select(table.c.id).where(table.c.tenant_id == tenant_id, table.c.id.in_(chunk)))
                found |= {row.id for row in rows}
        return found

    async def _foreign(self, tenant_id: str, ids: set[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            rows = await self._db.fetch_all(select(_relayed.c.id).where(_relayed.c.tenant_id != tenant_id, _relayed.c.id.in_(chunk)))
            found |= {row.id for row in rows}
        return found

    # ---- as the answer passes ----

    def watch(self, tenant_id: str, protocol: str, relayed: RelayResponse) -> RelayResponse:
        """The answer unchanged; the ids it mints bound to `tenant_id` (an SSE frame's before the frame
        is passed on, a JSON body's before its last byte is)."""
        if relayed.status_code == 200:
            sse = "text/event-stream" in relayed.headers.get("content-type", "")
            relayed.body = self._watching(tenant_id, MINTING[protocol], relayed.body, sse)
        return relayed

    async def _watching(self, tenant_id: str, minting: Minting, chunks, sse: bool) -> AsyncIterator[bytes]:
        seen: set[str] = set()
        if sse:
            frames = _Frames(minting)
            async for chunk in chunks:
                for event in frames.feed(chunk):
                    await self.bind(tenant_id, minting.from_event(event), seen)
                yield chunk
            return
        kept, whole, previous = bytearray(), True, None
        async for chunk in chunks:
            if whole:
                kept += chunk
                if len(kept) > _JSON_LIMIT:
                    whole, kept = False, kept[:_HEAD]
            if previous is not None:
                yield previous
            previous = chunk
        found: list = []
        if whole:
            try:
                body = json.loads(kept)
                found = minting.from_body(body) if isinstance(body, dict) else []
            except ValueError:
                pass
        elif minting.from_body is response_minted and (match := _RESPONSE_ID.match(kept)):
            found = [("response", match.group(1).decode())]
        await self.bind(tenant_id, found, seen)
        if previous is not None:
            yield previous  # the last bytes once the ids are bound: a client acting on the whole body finds them

    async def bind(self, tenant_id: str, found: list[tuple[str, str]], seen: set[str] | None = None) -> None:
        """Binds minted ids to the tenant; an id bound already (to anyone) stays as it is."""
        for kind, object_id in found:
            if len(object_id) > _ID_LIMIT or (seen is not None and object_id in seen):
                continue
            if seen is not None:
                seen.add(object_id)
            try:
                if kind == "response":
                    await self._response_rows.record_relayed(object_id, tenant_id)
                else:
                    await self._db.write([(_INSERT, {"id": object_id, "tenant_id": tenant_id, "kind": kind, "created_at": int(time.time())})])
            except IntegrityError:
                pass  # bound already
            except Exception:  # noqa: BLE001 — an unbound id is refused later, never handed to another tenant
                log.exception("could not bind relayed id %s", object_id)


def _chunks(ids: set[str]) -> list[list[str]]:
    ordered = sorted(ids)
    return [ordered[i:i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]
