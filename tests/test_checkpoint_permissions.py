"""Fine-tuning checkpoint permissions through the official SDK: create for projects, list with filters and
pagination, delete, the checkpoint's owner only (open mode), the admin key (keys mode), bad input."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import assert_openai_error, new_key, start_server
from tests.support.openapi import assert_matches_schema
from tests.test_fine_tuning import TOPICS, example, training_file, wait_job
from tests.test_keys import ADMIN_KEY, issue, keys_env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("cp"), {"UNDERSTUDY_FINE_TUNE_STEP_SECONDS": "0.01"})
    yield srv
    srv.stop()


def tuned(client) -> tuple[str, str]:
    """A succeeded job's fine-tuned model and its first checkpoint's model name."""
    job = client.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=training_file(client, [example(p, r) for p, r in TOPICS]).id)
    job = wait_job(client, job.id)
    assert job.status == "succeeded", job.error
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    return job.fine_tuned_model, ckpts[-1].fine_tuned_model_checkpoint


def test_permissions_lifecycle_and_pagination(server):
    key = new_key()
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        model, ckpt = tuned(client)
        perms = client.fine_tuning.checkpoints.permissions
        created = perms.create(ckpt, project_ids=["proj_a", "proj_b", "proj_c"])
        raw = httpx.post(f"{server.url}/v1/fine_tuning/checkpoints/{ckpt}/permissions", json={"project_ids": ["proj_a"]},
                         headers={"Authorization": f"Bearer {key}"}).json()
        assert_matches_schema(raw, "ListFineTuningCheckpointPermissionResponse")
        assert raw["data"][0]["id"] == created.data[0].id  # a project already allowed keeps its permission
        ids = [p.id for p in created.data]
        assert all(i.startswith("cp_") for i in ids) and [p.project_id for p in created.data] == ["proj_a", "proj_b", "proj_c"]
        assert [p.id for p in perms.list(ckpt).data] == ids[::-1]  # newest first
        first = perms.list(ckpt, limit=2, order="ascending")
        assert [p.id for p in first.data] == ids[:2] and first.has_more
        assert [p.id for p in perms.list(ckpt, limit=2, order="ascending", after=ids[1]).data] == ids[2:]
        assert [p.project_id for p in perms.list(ckpt, project_id="proj_b").data] == ["proj_b"]
        listed = httpx.get(f"{server.url}/v1/fine_tuning/checkpoints/{ckpt}/permissions", headers={"Authorization": f"Bearer {key}"}).json()
        assert_matches_schema(listed, "ListFineTuningCheckpointPermissionResponse")
        deleted = httpx.delete(f"{server.url}/v1/fine_tuning/checkpoints/{ckpt}/permissions/{ids[0]}", headers={"Authorization": f"Bearer {key}"})
        assert_matches_schema(deleted.json(), "DeleteFineTuningCheckpointPermissionResponse")
        assert deleted.json() == {"object": "checkpoint.permission", "id": ids[0], "deleted": True}
        assert perms.delete(ids[1], fine_tuned_model_checkpoint=ckpt).deleted
        with pytest.raises(openai.NotFoundError):
            perms.delete(ids[0], fine_tuned_model_checkpoint=ckpt)
        assert [p.id for p in perms.list(ckpt).data] == [ids[2]]
        assert perms.create(model, project_ids=["proj_x"]).data[0].project_id == "proj_x"  # the final model too
        assert [p.project_id for p in perms.list(model).data] == ["proj_x"]
    # Another tenant sees neither the checkpoint nor its permissions.
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.checkpoints.permissions.list(ckpt)
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.checkpoints.permissions.create(ckpt, project_ids=["proj_a"])
        with pytest.raises(openai.NotFoundError):
            other.fine_tuning.checkpoints.permissions.delete(ids[2], fine_tuned_model_checkpoint=ckpt)


def test_bad_input(server):
    key = new_key()
    headers = {"Authorization": f"Bearer {key}"}
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0) as client:
        _, ckpt = tuned(client)
    url = f"{server.url}/v1/fine_tuning/checkpoints/{ckpt}/permissions"
    assert_openai_error(httpx.post(url, json={}, headers=headers), 400, param="project_ids", code="missing_required_parameter")
    assert_openai_error(httpx.post(url, json={"project_ids": []}, headers=headers), 400, param="project_ids")
    assert_openai_error(httpx.post(url, json={"project_ids": "proj_a"}, headers=headers), 400, param="project_ids")
    assert_openai_error(httpx.post(url, json={"project_ids": [3]}, headers=headers), 400, param="project_ids[0]")
    assert_openai_error(httpx.post(url, json={"project_ids": ["p"], "x": 1}, headers=headers), 400, param="x")
    assert_openai_error(httpx.get(url, params={"order": "asc"}, headers=headers), 400, param="order")
    assert_openai_error(httpx.get(url, params={"limit": 0}, headers=headers), 400, param="limit")
    missing = f"{server.url}/v1/fine_tuning/checkpoints/ft:gpt-4o-mini:understudy::nope1234:ckpt-step-1/permissions"
    assert_openai_error(httpx.get(missing, headers=headers), 404, param="fine_tuned_model_checkpoint")


def test_keys_mode_needs_an_admin_key(tmp_path):
    srv = start_server(tmp_path, keys_env(UNDERSTUDY_FINE_TUNE_STEP_SECONDS="0.01"))
    try:
        env = keys_env(UNDERSTUDY_DATA_DIR=str(tmp_path))
        key = issue(env, "owner")
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as client:
            model, ckpt = tuned(client)
            with pytest.raises(openai.AuthenticationError):  # a project key is not enough
                client.fine_tuning.checkpoints.permissions.list(ckpt)
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        url = f"{srv.url}/v1/fine_tuning/checkpoints/{ckpt}/permissions"
        assert_openai_error(httpx.post(url, json={"project_ids": ["proj_nope"]}, headers=admin), 404, param="project_ids")
        other = httpx.post(f"{srv.url}/v1/organization/projects", json={"name": "Other"}, headers=admin).json()
        created = httpx.post(url, json={"project_ids": [other["id"]]}, headers=admin)
        assert created.status_code == 200 and created.json()["data"][0]["project_id"] == other["id"]
        assert httpx.get(url, headers=admin).json()["data"][0]["id"] == created.json()["data"][0]["id"]
        # Sharing the fine-tuned model lets the other project use it, until the permission is deleted.
        model_url = f"{srv.url}/v1/fine_tuning/checkpoints/{model}/permissions"
        grant = httpx.post(model_url, json={"project_ids": [other["id"]]}, headers=admin).json()["data"][0]
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=issue(env, other["id"]), max_retries=0) as guest:
            assert guest.models.retrieve(model).id == model and model in [m.id for m in guest.models.list()]
            assert guest.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}]).choices[0].message.content
            assert httpx.delete(f"{model_url}/{grant['id']}", headers=admin).json()["deleted"]
            with pytest.raises(openai.NotFoundError):
                guest.models.retrieve(model)
    finally:
        srv.stop()
