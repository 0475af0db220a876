"""Scripted answers and injected faults in front of every model call (app/services/inference.py asks
`decide` first), and the per-tenant log of model calls a test reads back.

Rules come from two places: `UNDERSTUDY_SCRIPT` (a YAML or JSON file, for every tenant) and the control
API (`/_understudy/v1/rules`, per tenant). A tenant's own rules are tried first, then the file's; the
first that matches answers. Counts (`nth`, `times`) and the seeded `probability` draw are per tenant,
so parallel tests never see each other's state.
"""
from __future__ import annotations

import asyncio
import random
import time
from itertools import chain
from pathlib import Path
from typing import AsyncIterator

import msgspec
import yaml

from app.core.errors import APIError, invalid_request
from app.core.ids import new_id
from app.inference.base import UpstreamError
from app.services.script import answers
from app.services.script.faults import StreamFault, error_for, malformed_frame
from app.services.script.rules import MAX_RULES, Call, Rule, parse_rule
from app.services.script.state import ScriptState, Snapshot

_PARSED_KEPT = 10_000
_encode = msgspec.json.Encoder().encode


def load_script(path: str) -> tuple[list[Rule], bool]:
    """The rules and the `strict` flag of a script file; a ValueError says what is wrong in it."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"UNDERSTUDY_SCRIPT: cannot read {path}: {error}") from None
    strict = False
    if isinstance(spec, dict):
        strict = bool(spec.get("strict", False))
        spec = spec.get("rules") or []
    if not isinstance(spec, list):
        raise ValueError(f"UNDERSTUDY_SCRIPT: {path} must hold a list of rules, or {{strict: …, rules: [...]}}")
    rules = []
    for index, item in enumerate(spec):
        try:
            rules.append(parse_rule(item, (item.get("id") if isinstance(item, dict) else None) or f"rule_file_{index}", f"rules[{index}]"))
        except APIError as error:
            raise ValueError(f"UNDERSTUDY_SCRIPT: {path}: {error.message}") from None
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.id in seen:  # hits are counted by id: two rules with one id would share their counts
            raise ValueError(f"UNDERSTUDY_SCRIPT: {path}: rules[{index}]: the id '{rule.id}' is used twice.")
        seen.add(rule.id)
        rule.spec["source"] = "file"
    return rules, strict


class ScriptService:
    def __init__(self, state: ScriptState, file_rules: list[Rule] | None = None, file_strict: bool = False) -> None:
        self.state = state
        self._file_rules = file_rules or []
        self._file_strict = file_strict
        # Tenants' rules, parsed once, by their content: an id alone names no rule (a client picks its ids, so
        # two tenants, or one after a delete, may use the same id for different rules).
        self._parsed: dict[bytes, Rule] = {}
        self._compiled: dict[str, tuple[list[dict], list[Rule]]] = {}  # a tenant's rule list, as last parsed

    # ---- model calls ----

    async def scripted(self, tenant: str) -> bool:
        """Whether rules may answer this tenant's calls: byte-for-byte relays then step aside."""
        return bool(self._file_rules) or self._file_strict or (await self.state.snapshot(tenant)).active

    async def decide(self, tenant: str, endpoint: str, method: str, params: dict) -> Rule | None:
        """The rule that answers this call, or None for the model; records the call when the tenant
        scripts. Raises the strict-mode 404 when nothing matches and the tenant asked for that."""
        snapshot = await self.state.snapshot(tenant)
        if not snapshot.active and not self._file_rules and not self._file_strict:
            return None  # the common case: one lookup
        call = Call(endpoint, method, params)
        chosen = None
        for rule in chain(self._tenant_rules(tenant, snapshot), self._file_rules):
            if not rule.matches(call):
                continue
            hit = await self.state.hit(tenant, rule.id)
            if rule.answers_hit(hit) and _fires(rule, hit):
                chosen = rule
                break
        strict = snapshot.settings.get("strict", self._file_strict)
        outcome = "model" if chosen is None else ("fault" if "fault" in chosen.spec else "reply")
        if chosen is None and strict:
            outcome = "refused"
        await self._record(tenant, call, chosen, outcome)
        if outcome == "refused":
            raise APIError(f"No scripted rule matches this {endpoint} call to '{call.model}', and unmatched calls are refused (strict mode).",
                           status_code=404, code="no_matching_rule")
        return chosen

    def _tenant_rules(self, tenant: str, snapshot: Snapshot) -> list[Rule]:
        cached = self._compiled.get(tenant)
        if cached is not None and cached[0] is snapshot.rules:  # memory state: the same list until it changes
            return cached[1]
        rules = []
        for spec in snapshot.rules:
            given = _as_given(spec)
            key = _encode(given)
            rule = self._parsed.get(key)
            if rule is None:
                if len(self._parsed) >= _PARSED_KEPT:
                    self._parsed.clear()
                rule = self._parsed[key] = parse_rule(given, spec["id"])
            rules.append(rule)
        if len(self._compiled) >= _PARSED_KEPT:
            self._compiled.clear()
        self._compiled[tenant] = (snapshot.rules, rules)
        return rules

    async def _record(self, tenant: str, call: Call, rule: Rule | None, outcome: str) -> None:
        entry = {"id": new_id("modelcall_"), "object": "understudy.model_call", "created_at": int(time.time()),
                 "endpoint": call.endpoint, "model": call.model, "stream": call.method.endswith("_stream"),
                 "rule_id": rule.id if rule is not None else None, "outcome": outcome, "request": call.params}
        raw = _encode(entry)
        if len(raw) > 64 * 1024:  # a huge request is logged by its shape only
            entry["request"] = {"model": call.model, "truncated": True, "bytes": len(raw)}
            raw = _encode(entry)
        await self.state.record(tenant, raw)

    async def answer(self, rule: Rule, method: str, params: dict) -> dict:
        """A non-streamed call's answer (or its fault, raised as the upstream's error)."""
        spec = rule.spec
        if spec["delay_ms"]:
            await asyncio.sleep(spec["delay_ms"] / 1000)
        fault = spec.get("fault")
        if fault is not None:
            await _hold(fault)
            raise error_for(fault, params, streamed=False)
        reply = spec["reply"]
        if method == "chat":
            return answers.chat_completion(reply, params)
        if method == "completions":
            return answers.completion(reply, params)
        if method == "embeddings":
            return answers.embeddings(reply, params)
        raise invalid_request(f"A scripted rule cannot answer {method} (rule {rule.id}).")

    async def stream(self, rule: Rule, method: str, params: dict) -> AsyncIterator[dict]:
        spec = rule.spec
        if spec["delay_ms"]:  # a slow first byte
            await asyncio.sleep(spec["delay_ms"] / 1000)
        fault = spec.get("fault") or {}
        if fault.get("status") is not None or fault.get("timeout") is not None:
            await _hold(fault)
            raise error_for(fault, params, streamed=True)
        include_usage = (params.get("stream_options") or {}).get("include_usage") is True
        reply = spec.get("reply") or {"text": "Once upon a time, a stream was cut short."}
        chunks = (answers.chat_chunks if method == "chat_stream" else answers.completion_chunks)(reply, params, include_usage)
        delay = spec["chunk_delay_ms"] / 1000
        for number, chunk in enumerate(chunks):
            if fault.get("cut_after") == number:
                raise StreamFault(b"", "The upstream connection was cut mid-stream (scripted fault).")
            if fault.get("malformed_after") == number:
                raise StreamFault(malformed_frame(chunk), "The upstream sent a malformed chunk (scripted fault).")
            if delay and number:
                await asyncio.sleep(delay)
            yield chunk
        # A cut (or malformed chunk) asked past the stream's last chunk still breaks it: no clean finish.
        if fault.get("cut_after") is not None:
            raise StreamFault(b"", "The upstream connection was cut mid-stream (scripted fault).")
        if fault.get("malformed_after") is not None:
            raise StreamFault(b"data: {\"id\": \n\n", "The upstream sent a malformed chunk (scripted fault).")

    # ---- the control API ----

    async def add_rules(self, tenant: str, body: object) -> list[dict]:
        items = body.get("rules") if isinstance(body, dict) and "rules" in body else [body]
        if not isinstance(items, list) or not items:
            raise invalid_request("Expected a rule, or {'rules': [...]} with at least one rule.", param="rules")
        specs = []
        for index, item in enumerate(items):
            where = f"rules[{index}]" if len(items) > 1 or "rules" in body else "rule"
            rule_id = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else new_id("rule_")
            spec = parse_rule(item, rule_id, where).spec
            spec.update(created_at=int(time.time()), source="api")
            specs.append(spec)
        # The file's ids too: hits are counted by id, and an id names one rule in GET and DELETE.
        known = {spec["id"] for spec in (await self.state.snapshot(tenant)).rules} | {rule.id for rule in self._file_rules}
        for spec in specs:
            if spec["id"] in known:
                raise invalid_request(f"A rule with id '{spec['id']}' already exists.", param="id", code="duplicate_id")
            known.add(spec["id"])
        if not await self.state.add_rules(tenant, specs, MAX_RULES):
            raise invalid_request(f"A tenant holds at most {MAX_RULES} rules: delete some first.", param="rules", code="too_many_rules")
        return [{**spec, "hits": 0} for spec in specs]

    async def list_rules(self, tenant: str) -> list[dict]:
        snapshot, hits = await self.state.snapshot(tenant), await self.state.hits(tenant)
        specs = [*snapshot.rules, *(rule.spec for rule in self._file_rules)]
        return [{**spec, "hits": hits.get(spec["id"], 0)} for spec in specs]

    async def get_rule(self, tenant: str, rule_id: str) -> dict:
        for rule in await self.list_rules(tenant):
            if rule["id"] == rule_id:
                return rule
        raise APIError(f"No rule found with id '{rule_id}'.", status_code=404, param="rule_id")

    async def delete_rule(self, tenant: str, rule_id: str) -> dict:
        if not await self.state.delete_rule(tenant, rule_id):
            raise APIError(f"No rule found with id '{rule_id}'.", status_code=404, param="rule_id")
        return {"id": rule_id, "object": "understudy.rule.deleted", "deleted": True}

    async def clear_rules(self, tenant: str) -> dict:
        await self.state.clear_rules(tenant)
        return {"object": "understudy.rules.deleted", "deleted": True}

    async def settings(self, tenant: str) -> dict:
        given = (await self.state.snapshot(tenant)).settings
        return {"object": "understudy.script", "strict": given.get("strict", self._file_strict),
                "record_calls": bool(given.get("record_calls")), "file_rules": len(self._file_rules)}

    async def update_settings(self, tenant: str, body: dict) -> dict:
        current = dict((await self.state.snapshot(tenant)).settings)
        for name, value in body.items():
            if name not in ("strict", "record_calls"):
                raise invalid_request(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
            if not isinstance(value, bool):
                raise invalid_request(f"Invalid type for '{name}': expected a boolean.", param=name, code="invalid_type")
            current[name] = value
        await self.state.set_settings(tenant, current)
        return await self.settings(tenant)

    async def calls(self, tenant: str) -> list[dict]:
        return [msgspec.json.decode(raw) for raw in await self.state.calls(tenant)]


def _as_given(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k in ("id", "when", "reply", "fault", "times", "probability", "seed", "delay_ms", "chunk_delay_ms")}


def _fires(rule: Rule, hit: int) -> bool:
    """A rule with a `probability` answers a seeded draw of its calls: the same sequence every run."""
    probability = rule.spec.get("probability")
    if probability is None:
        return True
    return random.Random(f"{rule.spec.get('seed') or 0}:{hit}").random() < probability


async def _hold(fault: dict) -> None:
    if fault.get("timeout"):
        await asyncio.sleep(fault["timeout"])


__all__ = ["ScriptService", "load_script", "StreamFault", "UpstreamError"]
