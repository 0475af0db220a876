"""Content provenance checks: the images drawn here carry a signed marker in every output format, the check
recognises it, and an unmarked, altered or re-signed-elsewhere image is reported as not ours."""
from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from app.services.provenance import Provenance
from tests.conftest import assert_openai_error
from tests.support.openapi import assert_matches_schema


def _check(client, data: bytes, name: str = "image.png"):
    return client.content_provenance_checks.create(file=(name, data))


def _raw(server, api_key, data: bytes) -> dict:
    response = httpx.post(f"{server.url}/v1/content_provenance_checks", files={"file": ("x", data)},
                          headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    assert_matches_schema(response.json(), "ProvenanceResource")
    return response.json()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif", "svg"])
def test_generated_images_are_recognised_in_every_format(client, server, api_key, fmt):
    extra = {"frame_count": 2} if fmt == "gif" else {}
    data = base64.b64decode(client.images.generate(prompt="A lighthouse", model="gpt-image-2", output_format=fmt, quality="low",
                                                   size="1024x1024", extra_body=extra).data[0].b64_json)
    if fmt != "svg":
        Image.open(io.BytesIO(data)).load()  # still a valid image
    body = _raw(server, api_key, data)
    c2pa, synthid = body["results"]
    assert body["object"] == "content_provenance_check"
    assert c2pa == {"type": "c2pa", "outcome": "detected", "validation_state": "valid", "issuer": "Understudy",
                    "model": "gpt-image-2", "generated_at": None}
    assert synthid["type"] == "synthid" and synthid["outcome"] == "not_detected"
    checked = _check(client, data)  # the SDK's method
    assert checked.results[0].outcome == "detected"


def test_altered_and_unmarked_images_are_not_ours(client, server, api_key):
    data = base64.b64decode(client.images.generate(prompt="A lighthouse", model="gpt-image-2", quality="low", size="1024x1024").data[0].b64_json)
    image = Image.open(io.BytesIO(data))
    image.putpixel((5, 5), (0, 0, 0, 255))
    out = io.BytesIO()
    image.save(out, "PNG")  # re-encoded: Pillow drops our chunk
    c2pa = _raw(server, api_key, out.getvalue())["results"][0]
    assert c2pa["outcome"] == "not_detected" and c2pa["validation_state"] == "not_present" and c2pa["model"] is None
    # The marker kept, a byte of the pixel data changed: invalid.
    idat = data.index(b"IDAT") + 20
    tampered = data[:idat] + bytes([data[idat] ^ 1]) + data[idat + 1:]
    c2pa = _raw(server, api_key, tampered)["results"][0]
    assert (c2pa["outcome"], c2pa["validation_state"], c2pa["issuer"]) == ("not_detected", "invalid", None)
    # Signed with another server's secret: invalid too.
    foreign = Provenance(b"another-secret").mark(out.getvalue(), "png", "gpt-image-2")
    assert _raw(server, api_key, foreign)["results"][0]["validation_state"] == "invalid"
    # Audio: the synthid result only.
    speech = client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input="hello", response_format="wav").read()
    assert [r["type"] for r in _raw(server, api_key, speech)["results"]] == ["synthid"]


def test_bad_input(server, api_key):
    url, headers = f"{server.url}/v1/content_provenance_checks", {"Authorization": f"Bearer {api_key}"}
    assert_openai_error(httpx.post(url, files={"other": ("x", b"1")}, headers=headers), 400, param="file")
    assert_openai_error(httpx.post(url, files={"file": ("x.txt", b"just text")}, headers=headers), 400, param="file")


def test_the_secret_is_made_once_and_kept(tmp_path):
    from app.services.provenance import load_secret

    first = load_secret("", tmp_path)
    assert len(first) == 32 and load_secret("", tmp_path) == first and load_secret("configured", tmp_path) == b"configured"
    assert (tmp_path / "provenance.key").stat().st_mode & 0o777 == 0o600 and len(list(tmp_path.iterdir())) == 1
