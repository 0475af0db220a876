"""Keys mode (UNDERSTUDY_AUTH=keys): only issued keys work, a key's tenant is its project, the admin API
in OpenAI's shapes (projects, project keys, admin keys), the `understudy keys` CLI, and revocation that
reaches every API process within a second."""
from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.conftest import ROOT, assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema
from tests.support import pg
from tests.support.redis_db import claim_redis_db

ADMIN_KEY = "sk-admin-test-" + uuid.uuid4().hex


def keys_env(**extra: str) -> dict[str, str]:
    return {"UNDERSTUDY_AUTH": "keys", "UNDERSTUDY_ADMIN_KEY": ADMIN_KEY, **extra}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSTUDY_")}
    result = subprocess.run([sys.executable, "-m", "app.cli", "keys", *args], cwd=ROOT, env={**full_env, **env},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def issue(env: dict[str, str], project: str) -> str:
    key = cli(env, "create", "--project", project).stdout.strip().splitlines()[-1]
    assert key.startswith("sk-proj-"), key
    return key


@pytest.fixture(scope="module")
def keys_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("keys")
    srv = start_server(data_dir, keys_env())
    srv.env = keys_env(UNDERSTUDY_DATA_DIR=str(data_dir))
    yield srv
    srv.stop()


@pytest.fixture
def admin(keys_server):
    with httpx.Client(base_url=f"{keys_server.url}/v1/organization", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as c:
        yield c


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_unknown_keys_are_refused(keys_server):
    with sdk(keys_server, new_key()) as client, pytest.raises(openai.AuthenticationError) as caught:
        client.models.list()
    assert caught.value.status_code == 401
    assert caught.value.body["code"] == "invalid_api_key"
    # Neither is the admin key a tenant key.
    response = httpx.get(f"{keys_server.url}/v1/models", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert_openai_error(response, 401, code="invalid_api_key")


def test_keys_of_one_project_share_its_objects_and_nothing_else(keys_server):
    first, second, other = issue(keys_server.env, "alpha"), issue(keys_server.env, "alpha"), issue(keys_server.env, "beta")
    with sdk(keys_server, first) as a1, sdk(keys_server, second) as a2, sdk(keys_server, other) as b:
        assert a1.models.list().data
        uploaded = a1.files.create(file=("notes.txt", io.BytesIO(b"shared within alpha")), purpose="assistants")
        assert a2.files.retrieve(uploaded.id).id == uploaded.id
        assert a2.files.content(uploaded.id).read() == b"shared within alpha"
        assert uploaded.id in [f.id for f in a2.files.list()]
        with pytest.raises(openai.NotFoundError):
            b.files.retrieve(uploaded.id)
        assert uploaded.id not in [f.id for f in b.files.list()]
    listing = cli(keys_server.env, "list").stdout
    assert listing.count("\talpha\t") >= 2 and "\tbeta\t" in listing
    assert first not in listing and "sk-proj-" in listing  # only redacted values


def test_cli_revoke(keys_server):
    key = issue(keys_server.env, "gamma")
    with sdk(keys_server, key) as client:
        client.models.list()
        key_id = next(line.split("\t")[0] for line in cli(keys_server.env, "list").stdout.splitlines() if "\tgamma\t" in line)
        assert "revoked" in cli(keys_server.env, "revoke", key_id).stdout
        deadline = time.monotonic() + 1.5  # no Redis here: the cache entry lives at most a second
        while True:
            try:
                client.models.list()
            except openai.AuthenticationError:
                break
            assert time.monotonic() < deadline, "a revoked key still works"
            time.sleep(0.05)


def test_admin_endpoints_need_an_admin_key(keys_server):
    project_key = issue(keys_server.env, "delta")
    for headers in ({}, {"Authorization": "Bearer sk-admin-wrong"}, {"Authorization": f"Bearer {project_key}"}):
        response = httpx.get(f"{keys_server.url}/v1/organization/projects", headers=headers)
        assert_openai_error(response, 401)


def test_projects(admin):
    created = admin.post("/projects", json={"name": "Project One"})
    assert created.status_code == 200, created.text
    project = created.json()
    assert_matches_schema(project, "Project")
    assert project["id"].startswith("proj_") and project["name"] == "Project One" and project["status"] == "active"
    assert admin.get(f"/projects/{project['id']}").json() == project
    modified = admin.post(f"/projects/{project['id']}", json={"name": "Project Uno"}).json()
    assert_matches_schema(modified, "Project")
    assert modified["name"] == "Project Uno"
    listed = admin.get("/projects", params={"limit": 100}).json()
    assert_matches_schema(listed, "ProjectListResponse")
    assert project["id"] in [p["id"] for p in listed["data"]]
    archived = admin.post(f"/projects/{project['id']}/archive").json()
    assert_matches_schema(archived, "Project")
    assert archived["status"] == "archived" and archived["archived_at"] is not None
    assert project["id"] not in [p["id"] for p in admin.get("/projects", params={"limit": 100}).json()["data"]]
    assert project["id"] in [p["id"] for p in admin.get("/projects", params={"limit": 100, "include_archived": "true"}).json()["data"]]
    assert_openai_error(admin.get("/projects/proj_missing"), 404)
    assert_openai_error(admin.post("/projects", json={}), 400, param="name", code="missing_required_parameter")
    assert_openai_error(admin.post("/projects", json={"name": "x", "colour": "red"}), 400, param="colour")


def test_project_keys(keys_server, admin):
    project = admin.post("/projects", json={"name": "Keyed"}).json()
    issued = admin.post(f"/projects/{project['id']}/api_keys", json={"name": "ci"}).json()
    secret = issued.pop("value")
    assert_matches_schema(issued, "ProjectApiKey")
    assert secret.startswith("sk-proj-") and issued["name"] == "ci" and secret not in issued["redacted_value"]
    with sdk(keys_server, secret) as client:
        assert client.models.list().data
    listed = admin.get(f"/projects/{project['id']}/api_keys").json()
    assert_matches_schema(listed, "ProjectApiKeyListResponse")
    assert [k["id"] for k in listed["data"]] == [issued["id"]]
    retrieved = admin.get(f"/projects/{project['id']}/api_keys/{issued['id']}").json()
    assert_matches_schema(retrieved, "ProjectApiKey")
    assert retrieved["last_used_at"] is not None  # it was just used
    deleted = admin.delete(f"/projects/{project['id']}/api_keys/{issued['id']}").json()
    assert_matches_schema(deleted, "ProjectApiKeyDeleteResponse")
    assert deleted == {"object": "organization.project.api_key.deleted", "id": issued["id"], "deleted": True}
    assert_openai_error(admin.get(f"/projects/{project['id']}/api_keys/{issued['id']}"), 404)
    # In one process the revocation is immediate.
    with sdk(keys_server, secret) as client, pytest.raises(openai.AuthenticationError):
        client.models.list()
    # Archiving a project shuts its keys out.
    again = admin.post(f"/projects/{project['id']}/api_keys", json={}).json()["value"]
    with sdk(keys_server, again) as client:
        client.models.list()
        admin.post(f"/projects/{project['id']}/archive")
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    assert_openai_error(admin.post(f"/projects/{project['id']}/api_keys", json={}), 400)


def test_admin_api_keys(keys_server, admin):
    created = admin.post("/admin_api_keys", json={"name": "Ops"}).json()
    secret = created["value"]
    assert_matches_schema(created, "AdminApiKeyCreateResponse")
    assert secret.startswith("sk-admin-")
    with httpx.Client(base_url=f"{keys_server.url}/v1/organization", headers={"Authorization": f"Bearer {secret}"}) as issued:
        listed = issued.get("/admin_api_keys").json()  # the issued key works on the admin API
        assert_matches_schema(listed, "ApiKeyList")
        assert created["id"] in [k["id"] for k in listed["data"]]
        assert all("value" not in k for k in listed["data"])
        retrieved = issued.get(f"/admin_api_keys/{created['id']}").json()
        assert_matches_schema(retrieved, "AdminApiKey")
        assert retrieved["name"] == "Ops"
        deleted = admin.delete(f"/admin_api_keys/{created['id']}").json()
        assert deleted == {"object": "organization.admin_api_key.deleted", "id": created["id"], "deleted": True}
        assert_openai_error(issued.get("/admin_api_keys"), 401)
    assert_openai_error(admin.get(f"/admin_api_keys/{created['id']}"), 404)
    assert_openai_error(admin.post("/admin_api_keys", json={}), 400, param="name")


# -- two API processes over one PostgreSQL and Redis ----------------------------------------------------

@pytest.fixture
def pg_database():
    try:
        with pg.fresh_database("understudy_k") as url:
            yield url
    except ConnectionError as error:
        pytest.skip(str(error))


@pytest.mark.postgres
def test_revocation_reaches_every_api_process_within_a_second(tmp_path, pg_database):
    with claim_redis_db() as redis_url:
        _revocation_in_every_process(tmp_path, keys_env(UNDERSTUDY_DATABASE_URL=pg_database, UNDERSTUDY_REDIS_URL=redis_url))


def _revocation_in_every_process(tmp_path, env: dict) -> None:
    with ThreadPoolExecutor(2) as pool:  # start-up is mostly waiting: start both at once
        starting = [pool.submit(start_server, tmp_path / f"api{i}", env) for i in range(2)]
    servers = [future.result() for future in starting]
    try:
        with httpx.Client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30) as admin:
            project = admin.post(f"{servers[0].url}/v1/organization/projects", json={"name": "shared"}).json()
            issued = admin.post(f"{servers[1].url}/v1/organization/projects/{project['id']}/api_keys", json={}).json()
            clients = [sdk(server, issued["value"]) for server in servers]
            for client in clients:  # warm both caches
                client.models.list()
                client.models.list()
            revoked = admin.delete(f"{servers[0].url}/v1/organization/projects/{project['id']}/api_keys/{issued['id']}")
            assert revoked.status_code == 200, revoked.text
        deadline = time.monotonic() + 1.0
        pending = set(range(len(clients)))
        while pending:
            for index in list(pending):
                try:
                    clients[index].models.list()
                except openai.AuthenticationError:
                    pending.discard(index)
            assert not pending or time.monotonic() < deadline, f"API processes {sorted(pending)} still accept a revoked key"
            time.sleep(0.02)
        for client in clients:
            client.close()
    finally:
        for server in servers:
            server.stop()


# -- the authenticator in process ------------------------------------------------------------------------

def test_warm_keys_cost_no_query_and_revocations_are_heard_on_the_bus(tmp_path):
    from app.core.auth import Authenticator
    from app.core.errors import APIError
    from app.events import InMemoryEventBus
    from app.services.api_keys import ApiKeysService
    from storage.db import Database

    async def scenario():
        db, bus = Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"), InMemoryEventBus()
        try:
            await db.migrate()
            service = ApiKeysService(db, bus)
            project, issued, secret = await service.issue_for_project("alpha")
            auth = Authenticator(db, "keys", bus, keys_ttl=3600)
            reads = 0
            fetch_one = db.fetch_one

            async def counting(*args, **kwargs):
                nonlocal reads
                reads += 1
                return await fetch_one(*args, **kwargs)

            db.fetch_one = counting
            assert await auth.tenant_for_key(secret) == project["id"]
            for _ in range(100):
                assert await auth.tenant_for_key(secret) == project["id"]
            assert reads == 1
            for _ in range(3):  # an unknown key: one query, then refused from memory
                with pytest.raises(APIError) as caught:
                    await auth.tenant_for_key(new_key())
                assert caught.value.status_code == 401
            for _ in range(100):
                with pytest.raises(APIError):
                    await auth.tenant_for_key("sk-unknown-key")
            assert reads == 5
            await asyncio.sleep(0.05)  # the revocation listener subscribed on first use
            db.fetch_one = fetch_one
            await service.revoke(issued["id"])
            await asyncio.sleep(0.05)
            with pytest.raises(APIError):  # even with an hour-long TTL
                await auth.tenant_for_key(secret)
            await auth.close()
        finally:
            await bus.close()
            await db.dispose()

    asyncio.run(scenario())


def test_cli_admin_key(keys_server):
    secret = cli(keys_server.env, "create", "--admin", "--name", "ops").stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-admin-")
    response = httpx.get(f"{keys_server.url}/v1/organization/admin_api_keys", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.text
    assert "ops" in [k["name"] for k in response.json()["data"]]
    result = subprocess.run([sys.executable, "-m", "app.cli", "keys", "create"], cwd=ROOT, env={**os.environ, **keys_server.env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--project" in result.stderr


def test_usage_per_issued_key(keys_server, admin):
    created = admin.post("/projects", json={"name": "metered"}).json()
    keys = [admin.post(f"/projects/{created['id']}/api_keys", json={"name": f"k{i}"}).json() for i in range(2)]
    sent = {}
    for issued in keys:
        with sdk(keys_server, issued["value"]) as client:
            completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi from {issued['name']}"}])
            sent[issued["id"]] = completion.usage.prompt_tokens
    deadline = time.monotonic() + 15
    while True:  # usage is written about once a second
        body = admin.get("/usage/completions", params={"start_time": int(time.time()) - 3600, "project_ids": created["id"],
                                                        "group_by": ["api_key_id"]}).json()
        found = {r["api_key_id"]: r["input_tokens"] for b in body["data"] for r in b["results"]}
        if found == sent or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert found == sent
