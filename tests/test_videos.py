"""Videos end to end with the official SDK: the job's lifecycle and progress, a real MP4 (opened with
PyAV), the thumbnail and spritesheet variants, remix, edits, extensions, characters, pagination,
tenancy, bad input, spec-valid bodies, and a restart mid-job."""
from __future__ import annotations

import base64
import io
import time

import av
import httpx
import openai
import pytest
from PIL import Image

from tests.conftest import new_key, start_server
from tests.support.openapi import assert_matches_schema

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK marks the Sora API deprecated


def wait(client, video_id: str, until=("completed", "failed"), timeout: float = 60):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        video = client.videos.retrieve(video_id)
        seen.append((video.status, video.progress))
        if video.status in until:
            return video, seen
        time.sleep(0.05)
    raise AssertionError(f"video {video_id} stuck: {seen[-3:]}")


def png(width=64, height=64, colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def probe(data: bytes) -> tuple[int, int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.width, stream.height, frames, float(container.duration) / 1_000_000


def test_lifecycle_progress_and_a_real_mp4(client, http):
    video = client.videos.create(prompt="A red fox runs through snow", model="sora-2", seconds="4", size="1280x720")
    assert video.id.startswith("video_") and video.object == "video" and video.status in ("queued", "in_progress")
    assert video.size == "1280x720" and video.seconds == "4" and video.model == "sora-2" and video.completed_at is None
    assert_matches_schema(video.model_dump(mode="json"), "VideoResource")
    done, seen = wait(client, video.id)
    assert done.status == "completed" and done.progress == 100 and done.completed_at and done.expires_at > done.completed_at
    # Progress only climbs. (How many steps a poll sees depends on the machine's load: not asserted.)
    progresses = [p for s, p in seen if s == "in_progress"]
    assert progresses == sorted(progresses) and all(0 <= p < 100 for p in progresses)
    assert_matches_schema(http.get(f"/videos/{video.id}").json(), "VideoResource")

    mp4 = client.videos.download_content(video.id).read()
    assert mp4[4:8] == b"ftyp"
    assert probe(mp4) == (1280, 720, 16, 4.0)  # the requested size and length, at 4 fps
    for variant in ("thumbnail", "spritesheet"):
        response = http.get(f"/videos/{video.id}/content", params={"variant": variant})
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/webp")
        assert Image.open(io.BytesIO(response.content)).format == "WEBP"
    sheet = Image.open(io.BytesIO(client.videos.download_content(video.id, variant="spritesheet").read()))
    assert sheet.width > sheet.height  # one tile per second, four to a row
    again = client.videos.create_and_poll(prompt="A red fox runs through snow", seconds="4", size="1280x720", poll_interval_ms=50)
    assert client.videos.download_content(again.id).read() == mp4  # same request, same clip


def test_defaults_input_reference_and_json_body(client, http):
    video = client.videos.create(prompt="A lighthouse", input_reference=("ref.png", png(), "image/png"))
    assert video.size == "720x1280" and video.seconds == "4" and video.model == "sora-2"
    url = "data:image/png;base64," + base64.b64encode(png(colour=(0, 0, 255))).decode()
    raw = http.post("/videos", json={"prompt": "A lighthouse", "size": "1792x1024", "seconds": "8", "model": "sora-2-pro", "input_reference": {"image_url": url}})
    assert raw.status_code == 200, raw.text
    assert_matches_schema(raw.json(), "VideoResource")
    done = client.videos.poll(raw.json()["id"], poll_interval_ms=50)
    assert done.status == "completed" and probe(client.videos.download_content(done.id).read())[:3] == (1792, 1024, 32)
    uploaded = client.files.create(file=("ref.png", png(colour=(0, 255, 0)), "image/png"), purpose="vision")
    by_file = http.post("/videos", files={"input_reference[file_id]": (None, uploaded.id), "prompt": (None, "A field")})
    assert by_file.status_code == 200, by_file.text  # the multipart form of a reference object
    bad = http.post("/videos", json={"prompt": "x", "input_reference": {"file_id": "file-nope"}})
    assert bad.status_code == 404
    assert http.post("/videos", json={"prompt": "x", "seconds": 4}).json()["error"]["param"] == "seconds"  # a string, as the spec says
    client.videos.poll(by_file.json()["id"], poll_interval_ms=50)


def test_remix_edit_extend_and_characters(client, http):
    source = client.videos.create_and_poll(prompt="A paper boat on a pond", seconds="4", size="1280x720", poll_interval_ms=50)
    remix = client.videos.remix(source.id, prompt="Make it night")
    assert remix.remixed_from_video_id == source.id and remix.size == "1280x720" and remix.prompt == "Make it night"
    # The SDK (3.60) refuses `video={"id": …}` before sending (it expects a file there): JSON over raw HTTP.
    edit = openai.types.Video(**http.post("/videos/edits", json={"video": {"id": source.id}, "prompt": "Add rain"}).json())
    response = http.post("/videos/extensions", files={"video[id]": (None, source.id), "prompt": (None, "The boat sails on"), "seconds": (None, "4")})
    extension = openai.types.Video(**response.json())  # the multipart form of a video reference
    assert extension.seconds == "8"  # the stitched total
    for v in (remix, edit, extension):
        assert_matches_schema(v.model_dump(mode="json"), "VideoResource")
        assert client.videos.poll(v.id, poll_interval_ms=50).status == "completed"
    assert probe(client.videos.download_content(extension.id).read())[2] == 32
    clip = client.videos.download_content(source.id).read()
    uploaded = client.videos.edit(video=("clip.mp4", clip, "video/mp4"), prompt="Sepia")
    assert uploaded.size == "1280x720" and uploaded.seconds == "4"
    character = client.videos.create_character(name="Captain", video=("clip.mp4", clip, "video/mp4"))
    assert character.id.startswith("char_") and character.name == "Captain"
    body = http.get(f"/videos/characters/{character.id}").json()
    assert_matches_schema(body, "VideoCharacterResource")
    assert client.videos.get_character(character.id).name == "Captain"
    with pytest.raises(openai.BadRequestError) as error:
        client.videos.create_character(name="Nobody", video=("clip.mp4", b"not a video", "video/mp4"))
    assert error.value.body["param"] == "video"
    with pytest.raises(openai.BadRequestError) as error:  # only completed videos are remixed
        client.videos.remix(client.videos.create(prompt="slow").id, prompt="x")
    assert error.value.body["code"] == "invalid_video_status"


def test_list_pagination_and_delete(client, http):
    ids = [client.videos.create(prompt=f"clip {i}").id for i in range(3)]
    page = client.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2] and page.has_more
    body = http.get("/videos", params={"limit": 2, "after": ids[1]}).json()
    assert_matches_schema(body, "VideoListResource")
    assert [v["id"] for v in body["data"]] == [ids[0]] and body["has_more"] is False
    assert [v.id for v in client.videos.list(order="asc")] == ids
    deleted = client.videos.delete(ids[0])
    assert deleted.id == ids[0] and deleted.deleted and deleted.object == "video.deleted"
    assert_matches_schema(http.delete(f"/videos/{ids[1]}").json(), "DeletedVideoResource")
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(ids[0])
    for video_id in ids[2:]:
        client.videos.poll(video_id, poll_interval_ms=50)


def test_tenancy(client, server):
    video = client.videos.create_and_poll(prompt="mine", poll_interval_ms=50)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(), max_retries=0) as other:
        for call in (lambda: other.videos.retrieve(video.id), lambda: other.videos.download_content(video.id),
                     lambda: other.videos.delete(video.id), lambda: other.videos.remix(video.id, prompt="x"),
                     lambda: other.post("/videos/edits", body={"video": {"id": video.id}, "prompt": "x"}, cast_to=dict)):
            with pytest.raises(openai.NotFoundError) as error:
                call()
            assert "No such Video object" in error.value.body["message"]
        assert other.videos.list().data == []
    assert client.videos.retrieve(video.id).status == "completed"


@pytest.mark.parametrize("kwargs, param", [
    ({"prompt": "x", "seconds": "5"}, "seconds"),
    ({"prompt": "x", "size": "1024x1024"}, "size"),
    ({"prompt": "x", "model": "dall-e-3"}, "model"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "x", "input_reference": ("r.png", b"not an image", "image/png")}, "input_reference"),
])
def test_bad_input(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as error:
        client.videos.create(**kwargs)
    body = error.value.body
    assert body["param"] == param and body["type"] == "invalid_request_error" and body["message"]
    assert_matches_schema({"error": body}, "ErrorResponse")


def test_bounds_and_not_ready(client, http, server):
    big = png() + b"\0" * (20 * 1024 * 1024)
    response = http.post("/videos", files={"input_reference": ("r.png", big, "image/png")}, data={"prompt": "x"})
    assert response.status_code in (400, 413) and response.json()["error"]["param"] in ("input_reference", None)
    assert http.post("/videos", json={"prompt": "x", "input_reference": {"image_url": "http://169.254.169.254/x.png"}}).json()["error"]["param"] == "input_reference.image_url"
    assert http.post("/videos/extensions", json={"prompt": "x", "seconds": "4", "video": {"id": "video_nope"}}).status_code == 404
    video = client.videos.create(prompt="not yet")
    response = http.get(f"/videos/{video.id}/content")
    assert response.status_code == 400 and response.json()["error"]["code"] == "video_not_ready"
    client.videos.poll(video.id, poll_interval_ms=50)
    bad = http.get(f"/videos/{video.id}/content", params={"variant": "gif"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "variant"


def test_restart_mid_job_resumes(tmp_path):
    env = {"UNDERSTUDY_VIDEO_STEP_SECONDS": "0.3"}
    srv = start_server(tmp_path / "videos", env)
    key = new_key()
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as sdk:
            video = sdk.videos.create(prompt="survives a restart")
            wait(sdk, video.id, until=("in_progress",))
            time.sleep(0.7)
    finally:
        srv.stop()
    srv = start_server(tmp_path / "videos", env)
    try:
        with openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0) as sdk:
            stored = sdk.videos.retrieve(video.id)
            assert stored.status == "in_progress" and stored.progress > 0 or stored.status == "completed"
            done, _ = wait(sdk, video.id)
            assert done.status == "completed" and probe(sdk.videos.download_content(video.id).read())[2] == 16
    finally:
        srv.stop()
