"""The built-in tools the agent loop runs itself, for runs and responses alike: `file_search` over vector
stores and `code_interpreter` in the sandbox (and the image service the Responses image tool draws with, and
the hosted `shell` with its skills, app/services/skills/shell.py).
Each API shapes the results into its own objects (run step details, Responses output items).

A run's code gets its files as inputs and what it writes becomes Files; a response's code runs in a
container (app/services/containers): the container's files are its work dir, and what it writes goes back
into the container."""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass

_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


class ToolFailure(Exception):
    """A built-in tool could not run at all (not a tool result the model should see): the run fails."""


@dataclass
class SandboxOutput:
    logs: str
    written: list[tuple[str, str, bool]]  # (path, file id, is an image) of each file the code wrote, in order


class BuiltinTools:
    def __init__(self, vector_search, files, code_runner, images, containers, shell=None) -> None:
        self.vector_search = vector_search
        self.files = files
        self.code_runner = code_runner
        self.images = images  # ImagesService: the Responses image_generation tool
        self.containers = containers  # ContainersService: the Responses code_interpreter's work dirs
        self.shell_runner = shell  # ShellRunner (app/services/skills/shell.py): the Responses hosted shell tool, with skills

    async def check_shell(self, tenant_id: str, tools: list[dict]) -> None:
        """A request's shell tools name only this tenant's skills (400 naming the param otherwise)."""
        if self.shell_runner is not None:
            await self.shell_runner.check(tenant_id, tools)

    async def shell_skills(self, tenant_id: str, tool: dict) -> list[tuple[str, str]]:
        """(path in the sandbox, description) of each skill a shell tool's environment holds."""
        return await self.shell_runner.listing(tenant_id, tool) if self.shell_runner is not None else []

    async def shell(self, tenant_id: str, tool: dict, action: dict) -> list[dict]:
        """Runs a shell call's commands in a sandbox with the tool's skills; one output per command."""
        if self.shell_runner is None:
            raise ToolFailure("The shell tool is not available on this server.")
        return (await self.shell_runner.run(tenant_id, tool, action)).outputs

    async def file_search(self, tenant_id: str, store_ids: list[str], query: str, *, limit: int, score_threshold: float = 0.0,
                          filters: dict | None = None) -> list[dict]:
        """The stores' best passages for `query`, best first (the vector-store search result shape)."""
        request = {"query": query or " ", "max_num_results": min(limit, 50), "ranking_options": {"score_threshold": score_threshold}}
        if filters is not None:
            request["filters"] = filters
        found: list[dict] = []
        for store_id in store_ids:
            found += (await self.vector_search.search(tenant_id, store_id, request))["data"]
        found.sort(key=lambda r: r["score"], reverse=True)
        return found[:limit]

    async def code_interpreter(self, tenant_id: str, code: str, input_file_ids: list[str], output_purpose: str) -> SandboxOutput:
        """Runs `code` with the files as its inputs; what it wrote becomes Files of `output_purpose`."""
        from app.services.assistants.sandbox import SandboxFile  # subprocess machinery, loaded when first used

        inputs = []
        for file_id in input_file_ids:
            try:
                row = await self.files.get_row(tenant_id, file_id)
                inputs.append(SandboxFile(row.filename, await self.files.read_all(tenant_id, file_id)))
            except Exception:  # a file deleted since it was attached is simply not there
                continue
        result = await self.code_runner.run(code, inputs)
        output = SandboxOutput(_logs(result), [])
        for made in result.files:
            mime = mimetypes.guess_type(made.name)[0] or "application/octet-stream"
            created = await self.files.create_from_bytes(tenant_id, made.data, filename=made.name.rsplit("/", 1)[-1], purpose=output_purpose,
                                                         mime_type=mime)
            output.written.append((made.name, created["id"], mime in _IMAGE_TYPES))
        return output

    async def code_in_container(self, tenant_id: str, container_id: str, code: str) -> SandboxOutput:
        """Runs `code` with the container's files as its work dir; what it wrote becomes the container's
        files (`written` holds their /mnt/data paths and `cfile_` ids)."""
        from app.services.assistants.sandbox import SandboxFile

        inputs = [SandboxFile(name, data) for name, data in await self.containers.materialise(tenant_id, container_id)]
        result = await self.code_runner.run(code, inputs)
        output = SandboxOutput(_logs(result), [])
        for made in await self.containers.write_back(tenant_id, container_id, [(f.name, f.data) for f in result.files]):
            mime = mimetypes.guess_type(made["path"])[0] or "application/octet-stream"
            output.written.append((made["path"], made["id"], mime in _IMAGE_TYPES))
        return output


def _logs(result) -> str:
    """What the code printed, with the reason it failed; a sandbox that could not run at all is a ToolFailure."""
    if result.error and result.exit_code is None and "unavailable" in result.error:
        raise ToolFailure(result.error)
    logs = result.logs
    if result.error and result.error not in logs:
        logs = f"{logs}\n{result.error}".strip()
    return logs
