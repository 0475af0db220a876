"""The hosted shell tool in a response: the model's `shell` function call becomes a `shell_call` item (its
commands streamed as `response.shell_call_command.*`), run by the agent loop's built-in tools in the code
sandbox with the tool's skills (app/services/skills/shell.py), then a `shell_call_output` item (each
command's result as `response.shell_call_output_content.*`); the model reads the results as a tool message.

Commands run in a container: the one a `container_reference` names, or for `container_auto` one made at
the response's first shell call with the environment's files and skills, so what one call writes the
next call of the response finds, and the items name the container.
"""
from __future__ import annotations

import json

from app.core.ids import new_id
from app.inference.chunks import ToolCall


async def describe_skills(agent, chat: dict) -> None:
    """The shell function's description names the skills in its sandbox (path and description), as OpenAI
    tells the model of them; looked up once per response."""
    shell = next((t for t in chat.get("tools") or () if t.get("type") == "function" and t["function"]["name"] == "shell"), None)
    if shell is None:
        return
    if agent.skill_note is None:
        tool = next(t for t in agent.response["tools"] if t["type"] == "shell")
        found = await agent.engine.tools.shell_skills(agent.tenant_id, tool)
        listed = "".join(f"\n- {path}/ : {about} (read {path}/SKILL.md first)" for path, about in found)
        agent.skill_note = f" Skills available in the working directory:{listed}" if found else ""
    shell["function"] = {**shell["function"], "description": shell["function"]["description"] + agent.skill_note}


def _commands(arguments: str) -> list[str]:
    try:
        commands = json.loads(arguments or "{}").get("commands")
    except (ValueError, AttributeError):
        return []
    return commands if isinstance(commands, list) and all(isinstance(c, str) for c in commands) else []


async def _auto_container(agent, env: dict) -> str:
    if agent.shell_container is None:
        made = await agent.engine.tools.containers.create(agent.tenant_id, {
            "name": f"Shell for {agent.response['id']}", "file_ids": env.get("file_ids") or [], "skills": env.get("skills") or []})
        agent.shell_container = made["id"]
    return agent.shell_container


async def shell_steps(agent, call: ToolCall):
    """Yields the call's stream events; appends its two items to the response and its result to the messages."""
    response, events = agent.response, agent.events
    tool = next(t for t in response["tools"] if t["type"] == "shell")
    env = tool.get("environment") or {}
    commands = _commands(call.arguments)
    action = {"commands": commands, "timeout_ms": None, "max_output_length": None}
    container_id = env.get("container_id") if env.get("type") == "container_reference" else await _auto_container(agent, env)
    environment = {"type": "container_reference", "container_id": container_id}
    item = {"type": "shell_call", "id": new_id("sh_"), "call_id": call.id, "action": action, "status": "in_progress", "environment": environment}
    index = len(response["output"])
    response["output"].append(item)
    yield events.item_added(index, item)
    for number, command in enumerate(commands):
        yield events.shell("shell_call_command.added", index, number, command="")
        yield events.shell("shell_call_command.delta", index, number, delta=command)
        yield events.shell("shell_call_command.done", index, number, command=command)
    # A container made for container_auto already holds the environment's files and skills.
    run_in = tool if env.get("type") == "container_reference" else {**tool, "environment": environment}
    outputs = await agent.engine.tools.shell(agent.tenant_id, run_in, action) if commands else []
    item["status"] = "completed"
    yield events.item_done(index, item)
    result = {"type": "shell_call_output", "id": new_id("sho_"), "call_id": call.id, "status": "completed", "output": outputs,
              "max_output_length": None}
    index = len(response["output"])
    response["output"].append(result)
    yield events.item_added(index, {**result, "status": "in_progress", "output": []})
    for number, output in enumerate(outputs):
        yield events.shell("shell_call_output_content.delta", index, number, item_id=result["id"],
                           delta={"stdout": output["stdout"], "stderr": output["stderr"]})
        yield events.shell("shell_call_output_content.done", index, number, item_id=result["id"], output=[output])
    yield events.item_done(index, result)
    agent.messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(outputs) if commands else "No commands were given."})
