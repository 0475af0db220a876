"""The Responses `code_interpreter` tool: the model's calls to the `code_interpreter` function run in a
container (app/services/containers) through the agent loop's built-in tools, as `code_interpreter_call`
output items (`ci_`) with OpenAI's events: output_item.added, code_interpreter_call.in_progress, the code
streamed as `code_interpreter_call_code.delta` while the model writes it, `…_code.done`, `….interpreting`,
`….completed`, output_item.done.

Which container: an id names it; `"auto"` (or `{"type": "auto", "file_ids": […]}`) reuses the container the
previous responses of the chain ran code in, while it runs, else makes one (with the files copied in) at the
first call. Files the code writes become the container's files; a reply that names one (`/mnt/data/…`, as
`sandbox:/mnt/data/…` links do) gets a `container_file_citation` for it.
"""
from __future__ import annotations

import base64
import json
import re

from app.core.errors import APIError, invalid_request
from app.core.ids import check_prefix
from app.services.containers.service import WORK, expired  # noqa: F401  (expired: the service's 400)

INCLUDE = "code_interpreter_call.outputs"
CODE_FUNCTION = {"type": "function", "function": {
    "name": "code_interpreter",
    "description": f"Run Python code in a sandboxed container (no network). The container's files are in {WORK}, the working directory, "
                   f"and persist between calls; files the code writes there are kept. Print what you want to see; link a file the user "
                   f"should get as sandbox:{WORK}/<name>.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "Python source."}}, "required": ["code"]}}}
_CODE_KEY = re.compile(r'"(?:code|input)"\s*:\s*"')
_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def check_tool(tool: dict, index: int) -> dict:
    """The tool as the Response echoes it; `container` must be "auto", a container id or an auto object."""
    container = tool.get("container")
    param = f"tools[{index}].container"
    if container is None:
        raise invalid_request(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if isinstance(container, str) and container != "auto":
        check_prefix(container, "cntr_", param)
    elif isinstance(container, dict) and container.get("type") != "auto":
        raise invalid_request(f"Invalid value: '{container.get('type')}'. Supported values are: 'auto'.", param=f"{param}.type", code="invalid_value")
    return dict(tool)


def code_of(arguments: str) -> str:
    """The `code` argument of a finished call (its raw arguments if they are not JSON)."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return arguments or ""
    found = (value.get("code") or value.get("input")) if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def partial_code(arguments: str) -> str:
    """As much of the `code` string as the arguments streamed so far hold (escapes decoded; a half escape waits)."""
    match = _CODE_KEY.search(arguments)
    if match is None:
        return ""
    raw, i, text = arguments[match.end():], 0, []
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            break
        if ch == "\\":
            width = 6 if raw[i + 1:i + 2] == "u" else 2
            if i + width > len(raw):
                break
            try:
                text.append(json.loads(f'"{raw[i:i + width]}"'))
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            i += width
            continue
        text.append(ch)
        i += 1
    return "".join(text)


def previous_container(context: list[dict]) -> str | None:
    """The container the chain's last code_interpreter_call ran in."""
    for item in reversed(context):
        if item.get("type") == "code_interpreter_call" and isinstance(item.get("container_id"), str):
            return item["container_id"]
    return None


class CodeInterpreter:
    """One response's code interpreter calls: their items and events, the container they run in."""

    def __init__(self, tools, tenant_id: str, response: dict, params: dict, events, results: dict, hint: str | None) -> None:
        self.tools, self.tenant_id, self.response, self.events, self.results = tools, tenant_id, response, events, results
        self.included = INCLUDE in (params.get("include") or ())
        self.hint = hint  # the chain's container, when "auto"
        self.container_id: str | None = None
        self.calls: dict[int, list] = {}  # call index -> [item, output index, code sent so far]
        self.written: list[tuple[str, str, str]] = []  # (path, cfile id, container id) of files the code wrote

    async def container(self) -> str:
        if self.container_id is not None:
            return self.container_id
        tool = next(t for t in self.response["tools"] if t["type"] == "code_interpreter")
        spec, containers = tool["container"], self.tools.containers
        if isinstance(spec, str) and spec != "auto":
            self.container_id = spec
            return spec
        if self.hint is not None:
            try:
                if (await containers.get(self.tenant_id, self.hint))["status"] == "running":
                    self.container_id = self.hint
                    return self.hint
            except APIError:
                pass  # deleted since: a new one
        spec = spec if isinstance(spec, dict) else {}
        made = await containers.create(self.tenant_id, {"name": f"Container for {self.response['id']}", "file_ids": spec.get("file_ids") or [],
                                                        **({"memory_limit": spec["memory_limit"]} if spec.get("memory_limit") else {})})
        self.container_id = made["id"]
        return made["id"]

    async def begin(self, index: int, item_id: str):
        item = {"id": item_id, "type": "code_interpreter_call", "status": "in_progress", "code": "", "container_id": await self.container(),
                "outputs": None}
        self.calls[index] = [item, len(self.response["output"]), ""]
        self.response["output"].append(item)
        yield self.events.item_added(self.calls[index][1], item)
        yield self.events.code_interpreter("in_progress", item_id, self.calls[index][1])

    def stream(self, index: int, arguments: str):
        """The code written so far, as deltas."""
        entry = self.calls[index]
        code = partial_code(arguments)
        if len(code) > len(entry[2]) and code.startswith(entry[2]):
            yield self.events.code_delta(entry[0]["id"], entry[1], code[len(entry[2]):])
            entry[2] = code

    async def run(self, index: int, arguments: str, messages: list[dict], call_id: str):
        item, position, sent = self.calls[index]
        code = code_of(arguments)
        if code.startswith(sent) and len(code) > len(sent):
            yield self.events.code_delta(item["id"], position, code[len(sent):])
        item.update(code=code, status="interpreting")
        yield self.events.code_done(item["id"], position, code)
        yield self.events.code_interpreter("interpreting", item["id"], position)
        try:
            ran = await self.tools.code_in_container(self.tenant_id, item["container_id"], code)
        except APIError as error:  # the container expired or went while the model wrote
            item["status"] = "failed"
            yield self.events.item_done(position, item)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": f"The code could not run: {error.message}"})
            return
        outputs: list[dict] = [{"type": "logs", "logs": ran.logs}] if ran.logs else []
        for path, file_id, image in ran.written:
            self.written.append((path, file_id, item["container_id"]))
            if image:
                _, data = await self.tools.containers.content(self.tenant_id, item["container_id"], file_id)
                blob = b"".join([chunk async for chunk in data])
                mime = _MIME.get(path.rsplit(".", 1)[-1].lower(), "image/png")
                outputs.append({"type": "image", "url": f"data:{mime};base64,{base64.b64encode(blob).decode()}"})
        self.results[item["id"]] = outputs
        item.update(status="completed", outputs=outputs if self.included else None)
        yield self.events.code_interpreter("completed", item["id"], position)
        yield self.events.item_done(position, item)
        wrote = "".join(f"The code wrote sandbox:{path}\n" for path, _, _ in ran.written)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": (wrote + (ran.logs or "")).strip() or "(no output)"})

    def citations(self, text: str) -> list[dict]:
        """`container_file_citation`s for the written files the reply names (a `sandbox:` link or the bare path)."""
        out = []
        for path, file_id, container_id in self.written:
            for match in re.finditer(r"(?:sandbox:)?" + re.escape(path) + r"(?![\w./-])", text):
                out.append({"type": "container_file_citation", "container_id": container_id, "file_id": file_id, "start_index": match.start(),
                            "end_index": match.end(), "filename": path.rsplit("/", 1)[-1]})
        return sorted(out, key=lambda a: a["start_index"])
