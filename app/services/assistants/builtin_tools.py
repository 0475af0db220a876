"""The tools a run executes itself: `file_search` over the thread's and assistant's vector stores, and
`code_interpreter` in the sandbox; plus the `file_citation` annotations a reply's markers turn into."""
from __future__ import annotations

import json
import mimetypes
import re


DEFAULT_MAX_RESULTS = 20
RANKER = "default_2024_08_21"
_MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


class ToolFailure(Exception):
    """A built-in tool could not run at all (not a tool result the model should see): the run fails."""


async def file_search(platform, tenant_id: str, store_ids: list[str], arguments: str, options: dict, search_index: int) -> dict:
    """The tool call's `file_search` payload, with the passages (and their markers) for the model."""
    query = _argument(arguments, "query")
    limit = int(options.get("max_num_results") or DEFAULT_MAX_RESULTS)
    ranking = {"ranker": RANKER, "score_threshold": 0.0, **(options.get("ranking_options") or {})}
    if ranking["ranker"] == "auto":
        ranking["ranker"] = RANKER
    results: list[dict] = []
    for store_id in store_ids:
        page = await platform.vector_search.search(tenant_id, store_id, {
            "query": query or " ", "max_num_results": min(limit, 50),
            "ranking_options": {"score_threshold": ranking["score_threshold"]},
        })
        results += page["data"]
    results.sort(key=lambda r: r["score"], reverse=True)
    found = [
        {"file_id": r["file_id"], "file_name": r["filename"], "score": r["score"], "content": r["content"]}
        for r in results[:limit]
    ]
    passages = [f"【{search_index}:{i}†{r['file_name']}】 {r['content'][0]['text']}" for i, r in enumerate(found)]
    return {"query": query, "ranking_options": ranking, "results": found, "text": "\n\n".join(passages) or "No results."}


def public_file_search(payload: dict, include_content: bool) -> dict:
    """The step's `file_search` as clients see it: results' content only when asked for by `include[]`."""
    results = [r if include_content else {k: v for k, v in r.items() if k != "content"} for r in payload["results"]]
    return {"ranking_options": payload["ranking_options"], "results": results}


async def code_interpreter(platform, tenant_id: str, arguments: str, input_file_ids: list[str]) -> dict:
    """Runs the code; returns the call's `code_interpreter` payload ({input, outputs})."""
    from app.services.assistants.sandbox import SandboxFile  # subprocess machinery, loaded when first used

    code = _argument(arguments, "code") or _argument(arguments, "input")
    inputs = []
    for file_id in input_file_ids:
        try:
            row = await platform.files.get_row(tenant_id, file_id)
            inputs.append(SandboxFile(row.filename, await platform.files.read_all(tenant_id, file_id)))
        except Exception:  # a file deleted since it was attached is simply not there
            continue
    result = await platform.code_runner.run(code, inputs)
    if result.error and result.exit_code is None and "unavailable" in result.error:
        raise ToolFailure(result.error)
    logs = result.logs
    if result.error and result.error not in logs:
        logs = f"{logs}\n{result.error}".strip()
    outputs: list[dict] = [{"type": "logs", "logs": logs}] if logs else []
    for made in result.files:
        mime = mimetypes.guess_type(made.name)[0] or "application/octet-stream"
        created = await platform.files.create_from_bytes(tenant_id, made.data, filename=made.name.rsplit("/", 1)[-1], purpose="assistants_output", mime_type=mime)
        if mime in _IMAGE_TYPES:
            outputs.append({"type": "image", "image": {"file_id": created["id"]}})
        else:
            outputs.append({"type": "logs", "logs": f"[wrote {made.name}: {created['id']}]"})
    return {"input": code, "outputs": outputs}


def citations(text: str, searches: list[list[dict]]) -> list[dict]:
    """`file_citation` annotations for the 【search:result†name】 markers in a reply."""
    annotations = []
    for match in _MARKER.finditer(text):
        search, index = int(match.group(1)), int(match.group(2))
        if search < len(searches) and index < len(searches[search]):
            annotations.append({
                "type": "file_citation", "text": match.group(0), "start_index": match.start(), "end_index": match.end(),
                "file_citation": {"file_id": searches[search][index]["file_id"]},
            })
    return annotations


def _argument(arguments: str, name: str) -> str:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments or ""
    if isinstance(value, dict):
        found = value.get(name)
        return found if isinstance(found, str) else ""
    return ""
