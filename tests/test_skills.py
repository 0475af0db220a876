"""The Skills API through the official SDK: every `client.skills.*` and `client.skills.versions.*` method,
the zip downloads, pagination, tenancy, and uploads a hostile tenant might send (bad zips, traversal,
links, bombs, no or bad SKILL.md, oversize). Its own server, with a small UNDERSTUDY_MAX_SKILL_BYTES."""
from __future__ import annotations

import io
import json
import stat
import zipfile

import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema

MAX_SKILL_BYTES = 200_000
SKILL_MD = "---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\nRun `scripts/hello.sh`.\n"


@pytest.fixture(scope="module")
def skills_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("skills"), {"UNDERSTUDY_MAX_SKILL_BYTES": str(MAX_SKILL_BYTES)})
    yield srv
    srv.stop()


@pytest.fixture
def key() -> str:
    return new_key()


@pytest.fixture
def sdk(skills_server, key):
    with openai.OpenAI(base_url=f"{skills_server.url}/v1", api_key=key, max_retries=0) as client:
        yield client


@pytest.fixture
def raw(skills_server, key):
    with httpx.Client(base_url=f"{skills_server.url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        yield c


def skill_zip(name: str = "greeter", description: str = "Greets people.", extra: dict[str, bytes] | None = None, top: bool = True) -> bytes:
    out = io.BytesIO()
    prefix = f"{name}/" if top else ""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(prefix + "SKILL.md", SKILL_MD.format(name=name, description=description))
        archive.writestr(prefix + "scripts/hello.sh", "#!/bin/sh\necho hello from the skill\n")
        for path, data in (extra or {}).items():
            archive.writestr(prefix + path, data)
    return out.getvalue()


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_create_from_a_zip_and_read_it_back(sdk, raw):
    skill = sdk.skills.create(files=("greeter.zip", skill_zip(), "application/zip"))
    assert skill.id.startswith("skill_") and skill.object == "skill"
    assert (skill.name, skill.description, skill.default_version, skill.latest_version) == ("greeter", "Greets people.", "1", "1")
    body = raw.get(f"/skills/{skill.id}").json()
    assert_matches_schema(body, "SkillResource")
    assert sdk.skills.retrieve(skill.id) == skill
    content = sdk.skills.content.retrieve(skill.id)
    files = entries(content.read())
    assert files["greeter/scripts/hello.sh"] == b"#!/bin/sh\necho hello from the skill\n"
    assert files["greeter/SKILL.md"].startswith(b"---\nname: greeter")
    assert raw.get(f"/skills/{skill.id}/content").headers["content-type"] == "application/zip"


def test_create_from_a_directory_of_files(sdk):
    skill = sdk.skills.create(files=[
        ("notes/SKILL.md", SKILL_MD.format(name="notes", description="Keeps notes.").encode(), "text/markdown"),
        ("notes/data/list.txt", b"one\ntwo\n", "text/plain"),
    ])
    assert (skill.name, skill.description) == ("notes", "Keeps notes.")
    files = entries(sdk.skills.versions.content.retrieve("1", skill_id=skill.id).read())
    assert files == {"notes/SKILL.md": SKILL_MD.format(name="notes", description="Keeps notes.").encode(), "notes/data/list.txt": b"one\ntwo\n"}
    root = sdk.skills.create(files=[("SKILL.md", SKILL_MD.format(name="flat", description="At the root.").encode(), "text/markdown")])
    assert root.name == "flat"


def test_versions_lifecycle(sdk, raw):
    skill = sdk.skills.create(files=("s.zip", skill_zip("tool", "First."), "application/zip"))
    v2 = sdk.skills.versions.create(skill.id, files=("s.zip", skill_zip("tool", "Second."), "application/zip"))
    assert v2.id.startswith("skillver_") and (v2.object, v2.skill_id, v2.version, v2.description) == ("skill.version", skill.id, "2", "Second.")
    assert_matches_schema(raw.get(f"/skills/{skill.id}/versions/2").json(), "SkillVersionResource")
    again = sdk.skills.retrieve(skill.id)
    assert (again.default_version, again.latest_version, again.description) == ("1", "2", "First.")
    v3 = sdk.skills.versions.create(skill.id, files=("s.zip", skill_zip("tool", "Third."), "application/zip"), default=True)
    again = sdk.skills.retrieve(skill.id)
    assert (again.default_version, again.latest_version, again.description) == ("3", "3", "Third.")
    assert sdk.skills.versions.retrieve("2", skill_id=skill.id) == v2
    assert sdk.skills.versions.retrieve("latest", skill_id=skill.id).id == v3.id
    listed = raw.get(f"/skills/{skill.id}/versions").json()
    assert_matches_schema(listed, "SkillVersionListResource")
    assert [v["version"] for v in listed["data"]] == ["3", "2", "1"]
    assert [v.version for v in sdk.skills.versions.list(skill.id, order="asc")] == ["1", "2", "3"]
    page = sdk.skills.versions.list(skill.id, limit=2, order="asc")
    assert [v.version for v in page.data] == ["1", "2"] and page.has_more
    assert [v.version for v in sdk.skills.versions.list(skill.id, limit=2, order="asc", after=page.data[-1].id).data] == ["3"]
    # The default moves back; the skill shows that version's description.
    updated = sdk.skills.update(skill.id, default_version="2")
    assert (updated.default_version, updated.description) == ("2", "Second.")
    assert_matches_schema(raw.post(f"/skills/{skill.id}", json={"default_version": "2"}).json(), "SkillResource")
    assert b"Second." in entries(sdk.skills.content.retrieve(skill.id).read())["tool/SKILL.md"]
    # The default version cannot be deleted; another can, and the latest follows.
    assert_openai_error(raw.delete(f"/skills/{skill.id}/versions/2"), 400, param="version")
    deleted = sdk.skills.versions.delete("3", skill_id=skill.id)
    assert (deleted.object, deleted.deleted, deleted.id, deleted.version) == ("skill.version.deleted", True, v3.id, "3")
    assert sdk.skills.retrieve(skill.id).latest_version == "2"
    assert_openai_error(raw.get(f"/skills/{skill.id}/versions/3"), 404)
    assert_openai_error(raw.get(f"/skills/{skill.id}/versions/3/content"), 404)
    v4 = sdk.skills.versions.create(skill.id, files=("s.zip", skill_zip("tool", "Fourth."), "application/zip"))
    assert v4.version == "4"  # a deleted version's number is not reused
    assert_matches_schema(raw.delete(f"/skills/{skill.id}/versions/4").json(), "DeletedSkillVersionResource")
    assert_openai_error(raw.post(f"/skills/{skill.id}", json={"default_version": "9"}), 404, param="default_version")
    assert_openai_error(raw.post(f"/skills/{skill.id}", json={"default_version": "x"}), 400, param="default_version")
    assert_openai_error(raw.post(f"/skills/{skill.id}", json={}), 400, param="default_version")


def test_list_pagination_and_delete(sdk, raw):
    made = [sdk.skills.create(files=("s.zip", skill_zip(f"s{i}", f"Skill {i}."), "application/zip")) for i in range(3)]
    listed = raw.get("/skills").json()
    assert_matches_schema(listed, "SkillListResource")
    assert [s["id"] for s in listed["data"]] == [s.id for s in reversed(made)]
    page = sdk.skills.list(limit=2, order="asc")
    assert [s.id for s in page.data] == [made[0].id, made[1].id] and page.has_more
    assert [s.id for s in sdk.skills.list(order="asc")] == [s.id for s in made]  # auto-pagination
    assert [s.id for s in sdk.skills.list(limit=1, order="asc")] == [s.id for s in made]
    assert_openai_error(raw.get("/skills", params={"limit": 101}), 400, param="limit")
    deleted = sdk.skills.delete(made[1].id)
    assert (deleted.id, deleted.deleted, deleted.object) == (made[1].id, True, "skill.deleted")
    assert [s.id for s in sdk.skills.list(order="asc")] == [made[0].id, made[2].id]
    assert_openai_error(raw.get(f"/skills/{made[1].id}"), 404)
    assert_openai_error(raw.get(f"/skills/{made[1].id}/versions/1"), 404)
    assert_openai_error(raw.delete(f"/skills/{made[1].id}"), 404)
    assert_matches_schema(raw.delete(f"/skills/{made[0].id}").json(), "DeletedSkillResource")


def test_another_tenants_skill_is_not_found(sdk, skills_server):
    skill = sdk.skills.create(files=("s.zip", skill_zip(), "application/zip"))
    with openai.OpenAI(base_url=f"{skills_server.url}/v1", api_key=new_key(), max_retries=0) as other:
        for call in (lambda: other.skills.retrieve(skill.id), lambda: other.skills.content.retrieve(skill.id),
                     lambda: other.skills.versions.retrieve("1", skill_id=skill.id), lambda: other.skills.versions.list(skill.id),
                     lambda: other.skills.update(skill.id, default_version="1"), lambda: other.skills.delete(skill.id),
                     lambda: other.skills.versions.delete("1", skill_id=skill.id)):
            with pytest.raises(openai.NotFoundError):
                call()
        assert other.skills.list().data == []
    # Answered before its body is read, so on a client of its own: the server may close that connection
    # without saying so (being fixed in app/serving.py), and a reused one then reads "Server disconnected".
    with openai.OpenAI(base_url=f"{skills_server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.skills.versions.create(skill.id, files=("s.zip", skill_zip(), "application/zip"))
    assert sdk.skills.retrieve(skill.id).id == skill.id


def _zip_with(entries_: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries_:
            archive.writestr(info, data)
    return out.getvalue()


def _symlink(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


GOOD_MD = SKILL_MD.format(name="x", description="X.").encode()


@pytest.mark.parametrize("upload, words", [
    (b"PK\x03\x04 not really a zip", "not a valid zip"),
    (_zip_with([("x/SKILL.md", GOOD_MD), ("x/../../etc/passwd", b"root")]), "may not leave"),
    (_zip_with([("SKILL.md", GOOD_MD), ("/etc/passwd", b"root")]), "relative"),
    (_zip_with([("SKILL.md", GOOD_MD), (_symlink("link", "/etc/passwd"), b"/etc/passwd")]), "symbolic link"),
    (_zip_with([("x/README.md", b"no skill here")]), "SKILL.md"),
    (_zip_with([("SKILL.md", b"# no front matter\n")]), "front matter"),
    (_zip_with([("SKILL.md", b"---\nname: [unclosed\n---\n")]), "not valid YAML"),
    (_zip_with([("SKILL.md", b"---\ndescription: no name\n---\n")]), "'name'"),
    (_zip_with([("SKILL.md", b"---\nname: nodesc\n---\n")]), "'description'"),
    (_zip_with([("SKILL.md", b"---\nname: ../evil\ndescription: d\n---\n")]), "'name' must be"),
])
def test_bad_uploads_are_400s(raw, upload, words):
    error = assert_openai_error(raw.post("/skills", files={"files": ("s.zip", upload, "application/zip")}), 400, param="files")
    assert words in error["message"], error


def test_traversal_in_a_directory_upload_is_refused(raw):
    files = [("files[]", ("x/SKILL.md", GOOD_MD, "text/markdown")), ("files[]", ("x/../../evil.sh", b"echo", "text/plain"))]
    error = assert_openai_error(raw.post("/skills", files=files), 400, param="files")
    assert "may not leave" in error["message"]


def test_missing_files_and_unknown_ids(raw):
    assert_openai_error(raw.post("/skills", files={"other": ("a.txt", b"x", "text/plain")}), 400, param="files", code="missing_required_parameter")
    assert_openai_error(raw.get("/skills/skill_nope"), 404)
    assert_openai_error(raw.get("/skills/skill_nope/versions"), 404)
    assert_openai_error(raw.get("/skills/skill_nope/content"), 404)


def test_oversize_and_zip_bombs_are_refused(skills_server, key):
    # A fresh connection each: the server answers before reading the whole body (see app/serving.py).
    def post(files) -> httpx.Response:
        with httpx.Client(base_url=f"{skills_server.url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            return c.post("/skills", files=files)

    bomb = _zip_with([("SKILL.md", GOOD_MD), ("zeros.bin", b"\0" * (MAX_SKILL_BYTES * 20))])  # a few KB compressed
    assert len(bomb) < MAX_SKILL_BYTES
    assert_openai_error(post({"files": ("b.zip", bomb, "application/zip")}), 413, param="files")
    big = [("files[]", ("SKILL.md", GOOD_MD, "text/markdown")), ("files[]", ("data.bin", b"x" * (MAX_SKILL_BYTES + 1), "application/octet-stream"))]
    assert_openai_error(post(big), 413)
    huge = b"x" * (MAX_SKILL_BYTES + 2 * 1024 * 1024)
    assert post({"files": ("h.zip", huge, "application/zip")}).status_code == 413
    many = _zip_with([("SKILL.md", GOOD_MD)] + [(f"f{i}.txt", b"") for i in range(501)])
    error = assert_openai_error(post({"files": ("m.zip", many, "application/zip")}), 400, param="files")
    assert "too many" in error["message"]
    # An end record that understates the entries: the entries are counted, not the record believed.
    crowd = _zip_with([("SKILL.md", GOOD_MD)] + [(f"f{i}.txt", b"") for i in range(1500)])
    end = crowd.rfind(b"PK\x05\x06")
    lying = crowd[:end + 8] + (3).to_bytes(2, "little") * 2 + crowd[end + 12:]
    assert_openai_error(post({"files": ("c.zip", lying, "application/zip")}), 400, param="files")


# ---- the Responses shell tool with skills ----

def _shell_tool(*skills: dict) -> dict:
    return {"type": "shell", "environment": {"type": "container_auto", "skills": list(skills)}}


def test_a_response_runs_the_shell_with_a_skill(sdk, raw):
    skill = sdk.skills.create(files=("g.zip", skill_zip("greeter", "Greets people.", {"data/name.txt": b"Ada\n"}), "application/zip"))
    prompt = "Use the shell to run the greeter skill:\n```sh\nsh skills/greeter/scripts/hello.sh\ncat skills/greeter/data/name.txt\nls nothing-here\n```"
    response = sdk.responses.create(model="gpt-4o-mini", input=prompt, tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id})])
    assert response.status == "completed", response.error
    kinds = [item.type for item in response.output]
    assert kinds[:2] == ["shell_call", "shell_call_output"] and kinds[-1] == "message", kinds
    call, output = response.output[0], response.output[1]
    assert call.action.commands == ["sh skills/greeter/scripts/hello.sh", "cat skills/greeter/data/name.txt", "ls nothing-here"]
    # container_auto made a container for the response, holding the skill, and the item names it.
    assert call.environment.type == "container_reference"
    held = [f.path for f in sdk.containers.files.list(call.environment.container_id)]
    assert "/mnt/data/skills/greeter/data/name.txt" in held, held
    assert output.call_id == call.call_id
    assert [o.stdout for o in output.output[:2]] == ["hello from the skill\n", "Ada\n"], output.output[0].stderr
    assert [o.outcome.type for o in output.output] == ["exit", "exit", "exit"]
    assert [o.outcome.exit_code for o in output.output][:2] == [0, 0] and output.output[2].outcome.exit_code != 0
    assert "nothing-here" in output.output[2].stderr
    body = raw.get(f"/responses/{response.id}").json()
    assert_matches_schema(body, "Response")
    # A pinned version, and an inline skill, in the same sandbox.
    sdk.skills.versions.create(skill.id, files=("g.zip", skill_zip("greeter", "Greets people.", {"data/name.txt": b"Grace\n"}), "application/zip"))
    import base64
    inline = {"type": "inline", "name": "extra", "description": "Extra.",
              "source": {"type": "base64", "media_type": "application/zip", "data": base64.b64encode(skill_zip("extra", "Extra.")).decode()}}
    prompt = "Use the shell:\n```sh\ncat skills/greeter/data/name.txt\nsh skills/extra/scripts/hello.sh\n```"
    for version, name in (("2", "Grace\n"), ("1", "Ada\n"), ("latest", "Grace\n")):
        ran = sdk.responses.create(model="gpt-4o-mini", input=prompt,
                                   tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id, "version": version}, inline)])
        outs = ran.output[1].output
        assert [o.stdout for o in outs] == [name, "hello from the skill\n"], (version, outs)


def test_a_streamed_shell_response(sdk, raw):
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    with sdk.responses.stream(model="gpt-4o-mini", input="Run it in the shell:\n```\nsh skills/greeter/scripts/hello.sh\n```",
                              tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id})]) as stream:
        seen = list(stream)
        final = stream.get_final_response()
    events = [event.type for event in seen]
    assert events.count("response.output_item.done") >= 3 and events[-1] == "response.completed"
    names = {"response.shell_call_command.added": "ResponseShellCallCommandAddedStreamingEvent",
             "response.shell_call_command.delta": "ResponseShellCallCommandDeltaStreamingEvent",
             "response.shell_call_command.done": "ResponseShellCallCommandDoneStreamingEvent",
             "response.shell_call_output_content.delta": "ResponseShellCallOutputContentDeltaStreamingEvent",
             "response.shell_call_output_content.done": "ResponseShellCallOutputContentDoneStreamingEvent"}
    for event in seen:
        if event.type in names:
            assert_matches_schema(event.model_dump(exclude_none=True), names[event.type])
    assert [e for e in events if e in names] == list(names)
    done = next(e for e in seen if e.type == "response.shell_call_command.done")
    assert done.command == "sh skills/greeter/scripts/hello.sh"
    assert final.output[1].output[0].stdout == "hello from the skill\n"
    # The wire events as sent, not as the SDK parsed them: each one, items and responses included.
    with raw.stream("POST", "/responses", json={"model": "gpt-4o-mini", "stream": True, "input": "Run it in the shell:\n```\nsh skills/greeter/scripts/hello.sh\n```",
                                                "tools": [_shell_tool({"type": "skill_reference", "skill_id": skill.id})]}) as response:
        wire = [json.loads(line[6:]) for line in response.read().decode().split("\n") if line.startswith("data: ")]
    assert [e["type"] for e in wire if e["type"] in names] == list(names)
    for event in wire:
        assert_matches_schema(event, "ResponseStreamEvent")


def test_shell_skill_references_are_checked(sdk, raw, skills_server):
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))

    def create(*skills) -> httpx.Response:
        return raw.post("/responses", json={"model": "gpt-4o-mini", "input": "shell", "tools": [_shell_tool(*skills)]})

    error = assert_openai_error(create({"type": "skill_reference", "skill_id": "skill_unknown"}), 400,
                                param="tools[0].environment.skills[0].skill_id")
    assert "skill_unknown" in error["message"]
    assert_openai_error(create({"type": "skill_reference", "skill_id": skill.id}, {"type": "skill_reference", "skill_id": skill.id, "version": "7"}),
                        400, param="tools[0].environment.skills[1].skill_id")
    assert_openai_error(create({"type": "skill_reference", "skill_id": skill.id, "version": "two"}), 400,
                        param="tools[0].environment.skills[0].skill_id")
    bad_inline = {"type": "inline", "name": "x", "description": "x", "source": {"type": "base64", "media_type": "application/zip", "data": "bm90IGEgemlw"}}
    assert_openai_error(create(bad_inline), 400, param="tools[0].environment.skills[0].source.data")
    with httpx.Client(base_url=f"{skills_server.url}/v1", headers={"Authorization": f"Bearer {new_key()}"}, timeout=30) as other:
        response = other.post("/responses", json={"model": "gpt-4o-mini", "input": "shell",
                                                  "tools": [_shell_tool({"type": "skill_reference", "skill_id": skill.id})]})
        assert_openai_error(response, 400, param="tools[0].environment.skills[0].skill_id")  # another tenant's skill is unknown


def test_a_local_shell_is_echoed_not_run(sdk):
    response = sdk.responses.create(model="gpt-4o-mini", input="Use the shell please", tools=[{"type": "shell", "environment": {"type": "local"}}])
    assert [item.type for item in response.output] == ["message"]
    assert response.tools[0].type == "shell"


def test_the_shell_runner_reports_a_timeout_and_cuts_output():
    """A command past its timeout has a `timeout` outcome; the next one still runs; output is cut at max_output_length."""
    import asyncio

    from app.services.assistants.code_runner import CodeRunner
    from app.services.assistants.sandbox import sandbox_available
    from app.services.skills.shell import ShellRunner

    if not sandbox_available()[0]:
        pytest.skip(sandbox_available()[1])
    runner = ShellRunner(skills=None, files=None, code_runner=CodeRunner(1))
    tool = {"type": "shell", "environment": {"type": "container_auto"}}
    action = {"commands": ["sleep 5", "printf 0123456789"], "timeout_ms": 500, "max_output_length": 4}
    outputs = asyncio.run(runner.run("t", tool, action)).outputs
    assert outputs[0]["outcome"] == {"type": "timeout"}
    assert outputs[1] == {"stdout": "0123", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}


def test_shell_items_carry_into_the_next_turn(sdk):
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    tools = [_shell_tool({"type": "skill_reference", "skill_id": skill.id})]
    first = sdk.responses.create(model="gpt-4o-mini", input="Use the shell:\n```\nsh skills/greeter/scripts/hello.sh\n```", tools=tools)
    follow = sdk.responses.create(model="gpt-4o-mini", input="Thanks, what did it print?", tools=tools, previous_response_id=first.id)
    assert follow.status == "completed" and follow.output[-1].type == "message"
    # The same items given back as input (what a stateless client does) are accepted too.
    replayed = [item.model_dump(exclude_none=True) for item in first.output]
    again = sdk.responses.create(model="gpt-4o-mini", input=[{"role": "user", "content": "Run it"}, *replayed,
                                                             {"role": "user", "content": "And again?"}], tools=tools, store=False)
    assert again.status == "completed"


def test_the_model_is_told_of_the_skills(sdk, skills_server, key):
    skill = sdk.skills.create(files=("g.zip", skill_zip("greeter", "Greets people."), "application/zip"))
    with httpx.Client(base_url=f"{skills_server.url}/_understudy/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as understudy:
        assert understudy.post("/script", json={"record_calls": True}).status_code == 200
        sdk.responses.create(model="gpt-4o-mini", input="Hello", tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id})])
        calls = understudy.get("/calls").json()["data"]
    described = [t["function"]["description"] for t in calls[-1]["request"]["tools"] if t["function"]["name"] == "shell"]
    assert described and "skills/greeter/ : Greets people." in described[0], calls[-1]


def test_a_background_response_runs_the_shell(sdk):
    import time

    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    response = sdk.responses.create(model="gpt-4o-mini", input="Shell:\n```\nsh skills/greeter/scripts/hello.sh\n```", background=True,
                                    tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id})])
    deadline = time.monotonic() + 30
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        response = sdk.responses.retrieve(response.id)
    assert response.status == "completed", response.error
    assert response.output[1].output[0].stdout == "hello from the skill\n"


def test_a_forced_shell_call_lists_the_skills(sdk):
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    response = sdk.responses.create(model="gpt-4o-mini", input="Hello", tool_choice={"type": "shell"},
                                    tools=[_shell_tool({"type": "skill_reference", "skill_id": skill.id})])
    call, output = response.output[0], response.output[1]
    assert call.action.commands == ["ls -R"]  # the offline model's command without a fenced block
    assert "skills/greeter/scripts:\nhello.sh" in output.output[0].stdout
    assert response.output[-1].type == "message" and response.status == "completed"


def test_a_shell_in_a_named_container_keeps_its_files(sdk, raw, skills_server):
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    container = sdk.containers.create(name="shell-work")
    sdk.containers.files.create(container.id, file=("notes.txt", b"from the user\n"))
    env = {"type": "container_reference", "container_id": container.id, "skills": [{"type": "skill_reference", "skill_id": skill.id}]}
    prompt = "Use the shell:\n```sh\ncat notes.txt\nsh skills/greeter/scripts/hello.sh > made.txt\n```"
    first = sdk.responses.create(model="gpt-4o-mini", input=prompt, tools=[{"type": "shell", "environment": env}])
    assert first.status == "completed", first.error
    assert first.output[0].environment.container_id == container.id
    assert first.output[1].output[0].stdout == "from the user\n"
    # What the commands wrote is the container's now (skills apart), and the next call finds it there.
    paths = sorted(f.path for f in sdk.containers.files.list(container.id))
    assert paths == ["/mnt/data/made.txt", "/mnt/data/notes.txt"], paths
    made = next(f for f in sdk.containers.files.list(container.id) if f.path.endswith("made.txt"))
    assert made.source == "assistant"
    assert sdk.containers.files.content.retrieve(made.id, container_id=container.id).read() == b"hello from the skill\n"
    again = sdk.responses.create(model="gpt-4o-mini", input="Use the shell:\n```sh\ncat made.txt\n```", tools=[{"type": "shell", "environment": env}])
    assert again.output[1].output[0].stdout == "hello from the skill\n"
    # Unknown, and another tenant's, containers are refused up front, naming the field.
    for other_key in (None, new_key()):
        headers = {"Authorization": f"Bearer {other_key}"} if other_key else {}
        response = raw.post("/responses", headers=headers, json={
            "model": "gpt-4o-mini", "input": "shell",
            "tools": [{"type": "shell", "environment": {"type": "container_reference", "container_id": container.id if other_key else "cntr_unknown"}}]})
        assert response.status_code == 404 and response.json()["error"]["param"] == "tools[0].environment.container_id", response.text


def test_a_container_made_with_skills_holds_their_files(sdk, raw):
    import base64
    skill = sdk.skills.create(files=("g.zip", skill_zip(), "application/zip"))
    inline = {"type": "inline", "name": "extra", "description": "Extra.",
              "source": {"type": "base64", "media_type": "application/zip", "data": base64.b64encode(skill_zip("extra", "Extra.")).decode()}}
    container = sdk.containers.create(name="with-skills", skills=[{"type": "skill_reference", "skill_id": skill.id}, inline])
    paths = sorted(f.path for f in sdk.containers.files.list(container.id))
    assert paths == ["/mnt/data/skills/extra/SKILL.md", "/mnt/data/skills/extra/scripts/hello.sh",
                     "/mnt/data/skills/greeter/SKILL.md", "/mnt/data/skills/greeter/scripts/hello.sh"], paths
    ran = sdk.responses.create(model="gpt-4o-mini", input="Use the shell:\n```sh\nsh skills/greeter/scripts/hello.sh\n```",
                               tools=[{"type": "shell", "environment": {"type": "container_reference", "container_id": container.id}}])
    assert ran.output[1].output[0].stdout == "hello from the skill\n"
    # An unknown skill, or a bad inline one, is the request's 400 and leaves no container behind.
    before = [c.id for c in sdk.containers.list()]
    assert_openai_error(raw.post("/containers", json={"name": "x", "skills": [{"type": "skill_reference", "skill_id": "skill_nope"}]}),
                        400, param="skills[0].skill_id")
    bad = {**inline, "source": {**inline["source"], "data": "bm90IGEgemlw"}}
    assert_openai_error(raw.post("/containers", json={"name": "x", "skills": [bad]}), 400, param="skills[0].source.data")
    assert [c.id for c in sdk.containers.list()] == before
