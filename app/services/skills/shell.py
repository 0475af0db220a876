"""The hosted `shell` tool: the model's commands run in the code sandbox (app/services/assistants/sandbox.py),
with the environment's skills materialised under `skills/<name>/` in its work dir and its files at the top.

The sandbox runs Python, so a small driver runs each command with `/bin/sh -c` (the sandbox's root has the
OS's /usr, /bin with it) under its own timeout, and hands back each one's stdout, stderr and outcome as a
JSON line. `container_reference` runs in that container (app/services/containers): its files are the work
dir, and what the commands write goes back into it. (A response's `container_auto` shell makes a container
at its first call, app/services/responses/shell.py; given `container_auto` itself, a run gets a fresh sandbox.)
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from app.core.errors import APIError, invalid_request
from app.services.agent.tools import ToolFailure
from app.services.skills import bundle as bundles

HOSTED = ("container_auto", "container_reference")  # environments this server runs itself; `local` is the client's
SKILLS_DIR = "skills"
DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 120_000
MAX_OUTPUT_CHARS = 100_000  # per stream of each command, when the call sets no max_output_length
MAX_SKILLS = 200  # the spec's maxItems for an environment's skills
MAX_INPUT_BYTES = 256 * 1024 * 1024  # skills and files put in one sandbox (its tmpfs holds 512 MB in all)
_MARKER = "@@understudy-shell-results@@"
_DRIVER = r'''
import json, os, subprocess
spec = json.loads(%r)
for root, _, names in os.walk("skills"):
    for name in names:
        path = os.path.join(root, name)
        try:
            with open(path, "rb") as f:
                if f.read(2) == b"#!":
                    os.chmod(path, 0o755)
        except OSError:
            pass
results = []
def cut(data):
    text = (data or b"").decode("utf-8", "replace")
    return text[:spec["max"]]
for command in spec["commands"]:
    try:
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=spec["timeout"], stdin=subprocess.DEVNULL)
        results.append({"stdout": cut(done.stdout), "stderr": cut(done.stderr), "outcome": {"type": "exit", "exit_code": done.returncode}})
    except subprocess.TimeoutExpired as expired:
        results.append({"stdout": cut(expired.stdout), "stderr": cut(expired.stderr), "outcome": {"type": "timeout"}})
print(%r + json.dumps(results))
'''


@dataclass
class ShellRun:
    outputs: list[dict]  # one {"stdout", "stderr", "outcome"} per command (FunctionShellCallOutputContent)


def environment_of(tool: dict) -> dict:
    return tool.get("environment") or {"type": "local"}


def hosted(tool: dict) -> bool:
    return environment_of(tool).get("type") in HOSTED


class ShellRunner:
    def __init__(self, skills, files, code_runner, containers=None) -> None:
        self.skills = skills
        self.files = files
        self.code_runner = code_runner
        self.containers = containers  # ContainersService: the work dirs of `container_reference` environments

    async def check(self, tenant_id: str, tools: list[dict]) -> None:
        """Every skill a shell tool names is this tenant's (and its version exists); inline skills are valid."""
        for index, tool in enumerate(tools or ()):
            if not isinstance(tool, dict) or tool.get("type") != "shell":
                continue
            env = environment_of(tool)
            param = f"tools[{index}].environment"
            if env.get("type") == "container_reference":
                if self.containers is None:
                    raise invalid_request("Invalid 'tools[%d].environment': 'container_reference' needs the Containers API, which this server "
                                          "does not serve; use 'container_auto'." % index, param=f"{param}.container_id", code="invalid_value")
                try:
                    await self.containers.get(tenant_id, str(env.get("container_id") or ""))
                except APIError as error:  # another tenant's container is unknown too
                    error.param = f"{param}.container_id"
                    raise
            if len(env.get("skills") or ()) > MAX_SKILLS:
                raise invalid_request(f"Invalid '{param}.skills': array too long. Expected an array with maximum length {MAX_SKILLS}, but got "
                                      f"an array with length {len(env['skills'])} instead.", param=f"{param}.skills", code="array_above_max_length")
            for number, skill in enumerate(env.get("skills") or ()):
                where = f"{param}.skills[{number}]"
                if skill.get("type") == "skill_reference":
                    await self.skills.check_reference(tenant_id, skill.get("skill_id"), skill.get("version"), f"{where}.skill_id")
                elif skill.get("type") == "inline":
                    await asyncio.to_thread(bundles.inline, skill, where, self.skills.max_bytes)

    async def listing(self, tenant_id: str, tool: dict) -> list[tuple[str, str]]:
        """(path, description) of each skill the tool's environment holds, for the model's tool description."""
        found = []
        for skill in environment_of(tool).get("skills") or ():
            if skill.get("type") == "skill_reference":
                name, description = await self.skills.describe(tenant_id, skill["skill_id"], skill.get("version"))
            elif skill.get("type") == "inline":
                name = (await asyncio.to_thread(bundles.inline, skill, "skills", self.skills.max_bytes)).name
                description = skill.get("description") or ""
            else:
                continue
            found.append((f"{SKILLS_DIR}/{name}", description))
        return found

    async def _bundles(self, tenant_id: str, env: dict, budget: int = MAX_INPUT_BYTES) -> list[bundles.Bundle]:
        """The environment's skills, read one at a time: past `budget` bytes in all, a ToolFailure."""
        found, total = [], 0
        for number, skill in enumerate(env.get("skills") or ()):
            if skill.get("type") == "skill_reference":
                found.append(await self.skills.files(tenant_id, skill["skill_id"], skill.get("version")))
            elif skill.get("type") == "inline":
                found.append(await asyncio.to_thread(bundles.inline, skill, f"skills[{number}]", self.skills.max_bytes))
            else:
                continue
            total += found[-1].size
            if total > budget:
                raise ToolFailure(f"The shell environment's skills and files exceed {MAX_INPUT_BYTES} bytes in all.")
        return found

    async def run(self, tenant_id: str, tool: dict, action: dict) -> ShellRun:
        """Runs `action["commands"]` in a sandbox holding the tool's skills and files."""
        from app.services.assistants.sandbox import SandboxFile  # subprocess machinery, loaded when first used

        env = environment_of(tool)
        container_id = env.get("container_id") if env.get("type") == "container_reference" else None
        inputs, total = [], 0
        if container_id is not None:  # the container's files are the work dir (a use: its idle clock restarts)
            for name, data in await self.containers.materialise(tenant_id, container_id):
                inputs.append(SandboxFile(name, data))
                total += len(data)
        for file_id in env.get("file_ids") or ():
            try:
                row = await self.files.get_row(tenant_id, file_id)
                if total + row.bytes > MAX_INPUT_BYTES:
                    continue  # what does not fit is not there
                inputs.append(SandboxFile(row.filename, await self.files.read_all(tenant_id, file_id)))
                total += row.bytes
            except Exception:  # a file deleted since the request is simply not there
                continue
        for skill in await self._bundles(tenant_id, env, MAX_INPUT_BYTES - total):
            inputs += [SandboxFile(f"{SKILLS_DIR}/{skill.name}/{path}", data) for path, data in skill.files.items()]
        commands = [c for c in action.get("commands") or () if isinstance(c, str)]
        timeout_ms = min(int(action.get("timeout_ms") or DEFAULT_TIMEOUT_MS), MAX_TIMEOUT_MS)
        limit = int(action.get("max_output_length") or MAX_OUTPUT_CHARS)
        spec = json.dumps({"commands": commands, "timeout": timeout_ms / 1000, "max": max(0, min(limit, MAX_OUTPUT_CHARS))})
        result = await self.code_runner.run(_DRIVER % (spec, _MARKER), inputs, timeout_s=timeout_ms / 1000 * max(1, len(commands)) + 5)
        if result.error and result.exit_code is None and "unavailable" in result.error:
            raise ToolFailure(result.error)
        if container_id is not None:  # what the commands wrote, skills apart, stays in the container
            await self.containers.write_back(tenant_id, container_id, [(f.name, f.data) for f in result.files
                                                                       if not f.name.startswith(f"{SKILLS_DIR}/")])
        for line in reversed(result.logs.split("\n")):
            if line.startswith(_MARKER):
                return ShellRun(json.loads(line[len(_MARKER):]))
        if result.error and "timed out" in result.error:
            return ShellRun([{"stdout": "", "stderr": "", "outcome": {"type": "timeout"}} for _ in commands])
        reason = result.error or "the shell could not run"
        return ShellRun([{"stdout": "", "stderr": reason, "outcome": {"type": "exit", "exit_code": 1}} for _ in commands])
