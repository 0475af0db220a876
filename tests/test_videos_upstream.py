"""Videos route by model name: sora-2-pro to an OpenAI-compatible upstream (a fake on loopback that runs
OpenAI's video jobs), sora-2-2025-10-06 to an Anthropic one (no video API: a 400 at create), the rest to
the offline model. The upstream gets OpenAI's request with the provider's key; the client gets the
upstream's bytes under Understudy's own video id, with the upstream's progress on the way."""
from __future__ import annotations

import json
import time

import openai
import pytest

from tests.conftest import new_key, start_server
from tests.support.fake_upstream import FakeUpstream, _send_json, error_body, upstream_env
from tests.test_media_upstream import _send, form, png

KEY = "sk-upstream-video-key"
ASSETS = {"video": b"upstream mp4 bytes", "thumbnail": b"upstream thumbnail", "spritesheet": b"upstream spritesheet"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Sora API deprecated


class VideoUpstream(FakeUpstream):
    """Answers /v1/videos like OpenAI: a job that is in progress on its first poll and completed on the next."""

    polls: dict[str, int]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/videos"):
            return await super().__call__(scope, receive, send)
        record = await self.record(scope, receive)
        headers = record.headers
        if headers.get("authorization") != f"Bearer {KEY}":
            return await _send_json(send, 401, error_body("openai", 401, "Invalid API key."))
        polls = self.__dict__.setdefault("polls", {})
        parts = record.path.split("/")  # ["", "v1", "videos", id?, "content"?]
        if record.method == "POST":
            video_id = f"video_up{len(polls)}"
            polls[video_id] = 0
            return await _send_json(send, 200, {"id": video_id, "object": "video", "status": "queued", "progress": 0})
        video_id = parts[3]
        if len(parts) == 5 and parts[4] == "content":
            variant = (record.query.split("variant=")[1] if "variant=" in record.query else "video").split("&")[0]
            return await _send(send, 200, ASSETS[variant], "video/mp4" if variant == "video" else "image/webp")
        polls[video_id] += 1
        done = polls[video_id] > 1
        await _send_json(send, 200, {"id": video_id, "object": "video", "status": "completed" if done else "in_progress", "progress": 100 if done else 40})


@pytest.fixture(scope="module")
def upstream():
    with VideoUpstream(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(upstream, tmp_path_factory):
    providers = [{"name": "up-openai", "kind": "openai", "base_url": upstream.openai_url, "api_key": KEY},
                 {"name": "up-anthropic", "kind": "anthropic", "base_url": upstream.url, "api_key": KEY}]
    routes = [{"model": "sora-2-pro", "provider": "up-openai"}, {"model": "sora-2-2025-10-06", "provider": "up-anthropic"}]
    env = upstream_env(providers, routes, UNDERSTUDY_UPSTREAM_MAX_RETRIES="0", UNDERSTUDY_VIDEO_POLL_SECONDS="0.1")
    srv = start_server(tmp_path_factory.mktemp("video-routing"), env)
    yield srv
    srv.stop()


@pytest.fixture
def oa(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0, timeout=20) as client:
        yield client


def test_a_routed_video_is_made_by_the_upstream(oa, upstream):
    upstream.reset()
    video = oa.videos.create(model="sora-2-pro", prompt="A comet", seconds="8", size="1792x1024", input_reference=("r.png", png(), "image/png"))
    assert video.id.startswith("video_") and not video.id.startswith("video_up")
    seen = set()
    deadline = time.time() + 20
    while (current := oa.videos.retrieve(video.id)).status not in ("completed", "failed") and time.time() < deadline:
        seen.add(current.progress)
        time.sleep(0.02)
    assert current.status == "completed" and current.progress == 100, current.error
    assert 40 in seen  # the upstream's own progress, on the way
    for variant, data in ASSETS.items():
        assert oa.videos.download_content(video.id, variant=variant).read() == data
    create = next(r for r in upstream.requests if r.method == "POST")
    assert create.path == "/v1/videos" and create.headers["authorization"] == f"Bearer {KEY}"
    fields, files = form(create)
    assert fields == {"prompt": "A comet", "model": "sora-2-pro", "size": "1792x1024", "seconds": "8"}
    assert [f[0] for f in files] == ["input_reference"]
    remix = oa.videos.remix(video.id, prompt="At dawn")
    assert oa.videos.poll(remix.id, poll_interval_ms=50).status == "completed"
    sent = [r for r in upstream.requests if r.method == "POST"][-1]
    assert sent.path.endswith("/remix") and json.loads(sent.body) == {"prompt": "At dawn"}


def test_anthropic_has_no_video_api(oa, upstream):
    with pytest.raises(openai.BadRequestError) as error:
        oa.videos.create(model="sora-2-2025-10-06", prompt="x")
    assert error.value.body["param"] == "model" and "no video API" in error.value.body["message"]


def test_unrouted_models_stay_offline(oa, upstream):
    upstream.reset()
    video = oa.videos.create_and_poll(prompt="local", poll_interval_ms=50)
    assert video.status == "completed" and oa.videos.download_content(video.id).read()[4:8] == b"ftyp"
    assert not [r for r in upstream.requests if r.path.startswith("/v1/videos")]
