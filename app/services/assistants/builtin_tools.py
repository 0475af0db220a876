"""The built-in tools as a run shows them: `file_search` over the thread's and assistant's vector stores
(with the 【i:j†file】 markers the model cites and the `file_citation` annotations they become), and
`code_interpreter` outputs as step details. The tools themselves are the agent loop's (app/services/agent)."""
from __future__ import annotations

import json
import re

from app.services.agent.tools import BuiltinTools, ToolFailure  # noqa: F401  (ToolFailure: what a run fails with)

DEFAULT_MAX_RESULTS = 20
RANKER = "default_2024_08_21"
_MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")


async def file_search(tools: BuiltinTools, tenant_id: str, store_ids: list[str], arguments: str, options: dict, search_index: int) -> dict:
    """The tool call's `file_search` payload, with the passages (and their markers) for the model."""
    query = _argument(arguments, "query")
    limit = int(options.get("max_num_results") or DEFAULT_MAX_RESULTS)
    ranking = {"ranker": RANKER, "score_threshold": 0.0, **(options.get("ranking_options") or {})}
    if ranking["ranker"] == "auto":
        ranking["ranker"] = RANKER
    results = await tools.file_search(tenant_id, store_ids, query, limit=limit, score_threshold=ranking["score_threshold"])
    found = [{"file_id": r["file_id"], "file_name": r["filename"], "score": r["score"], "content": r["content"]} for r in results]
    passages = [f"【{search_index}:{i}†{r['file_name']}】 {r['content'][0]['text']}" for i, r in enumerate(found)]
    return {"query": query, "ranking_options": ranking, "results": found, "text": "\n\n".join(passages) or "No results."}


def public_file_search(payload: dict, include_content: bool) -> dict:
    """The step's `file_search` as clients see it: results' content only when asked for by `include[]`."""
    results = [r if include_content else {k: v for k, v in r.items() if k != "content"} for r in payload["results"]]
    return {"ranking_options": payload["ranking_options"], "results": results}


async def code_interpreter(tools: BuiltinTools, tenant_id: str, arguments: str, input_file_ids: list[str]) -> dict:
    """Runs the code; returns the call's `code_interpreter` payload ({input, outputs})."""
    code = _argument(arguments, "code") or _argument(arguments, "input")
    ran = await tools.code_interpreter(tenant_id, code, input_file_ids, "assistants_output")
    outputs: list[dict] = [{"type": "logs", "logs": ran.logs}] if ran.logs else []
    for path, file_id, image in ran.written:
        outputs.append({"type": "image", "image": {"file_id": file_id}} if image else {"type": "logs", "logs": f"[wrote {path}: {file_id}]"})
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
