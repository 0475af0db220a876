"""Images: generations, edits and variations with OpenAI's per-model rules, checked here and then
answered by the provider the model routes to (the offline image model,
app/inference/providers/offline/images.py, unless an upstream is configured for it).

The rules are the part clients trip over: which sizes, qualities and counts each model takes, that
GPT image models always answer in base64 (and report usage), that `url` answers are temporary links.
The offline model's links point back at this server: the bytes go to the blob store under
`<tenant>/images/<id>.<ext>` and `GET /v1/images/content/<tenant>-<id>.<ext>` serves them without a key
for an hour, as OpenAI's are. The id is random (160 bits) and carries its expiry. An upstream's answer
(its own links included) is passed on as it is.
"""
from __future__ import annotations

import base64
import re
import secrets
import time
from typing import AsyncIterator

from app.core.bounds import check_value
from app.core.errors import APIError, invalid_request
from app.inference.base import MediaAnswer, MediaFile, MediaRequest
from app.inference.providers.offline import images as model
from app.inference.providers.offline import media
from app.services.model_catalogue import load as load_catalogue
from storage.blobs import BlobNotFound, BlobStore

URL_TTL_SECONDS = 3600
_GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536")
_DALLE_SIZES = {"dall-e-2": ("256x256", "512x512", "1024x1024"), "dall-e-3": ("1024x1024", "1792x1024", "1024x1792")}
_QUALITIES = {"dall-e-2": ("standard", "auto"), "dall-e-3": ("standard", "hd", "auto"), "gpt": ("low", "medium", "high", "auto")}
_PROMPT_MAX = {"dall-e-2": 1000, "dall-e-3": 4000, "gpt": 32000}
_GPT_ONLY = ("output_format", "output_compression", "background", "moderation", "partial_images")
DEFAULT_GPT_MODEL = "gpt-image-1.5"
_CONTENT_NAME = re.compile(r"^(?P<tenant>[A-Za-z0-9_]{1,64})-(?P<id>[0-9a-f]{48})\.(?P<ext>png|jpeg|webp|gif|svg)$")


def unsupported(message: str, param: str) -> APIError:
    return invalid_request(message, param=param, code="unsupported_value")


def invalid_value(value, supported, param: str) -> APIError:
    listed = ", ".join(f"'{v}'" for v in supported)
    return invalid_request(f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value")


def check_range(value, low, high, param: str, kind: str = "integer") -> None:
    check_value(value, kind, low, high, param)


def check_length(text: str, maximum: int, param: str) -> None:
    if not text:
        raise invalid_request(f"Invalid '{param}': empty string. Expected a string with minimum length 1, but got an empty string instead.",
                              param=param, code="empty_string")
    if len(text) > maximum:
        raise invalid_request(
            f"Invalid '{param}': string too long. Expected a string with maximum length {maximum}, but got a string with length {len(text)} instead.",
            param=param, code="string_above_max_length")


def image_models() -> tuple[str, ...]:
    """The catalogue file's image models (what the Responses image tool may name)."""
    return load_catalogue().of_kind("image")


def family(model_id: str) -> str:
    return model_id if model_id in _DALLE_SIZES else "gpt"


def _flexible_sizes(model_id: str) -> bool:
    """gpt-image-2 and later take any WIDTHxHEIGHT within limits, not only the three standard sizes."""
    return model_id.startswith("gpt-image-2")


Upload = MediaFile  # an image part of a multipart request: its form field, file name, declared type and bytes


class ImagesService:
    def __init__(self, blobs: BlobStore, models, inference=None, provenance=None) -> None:
        """`inference` (app/services/inference.py) routes the checked requests. Without it (and without
        blobs and models: the Responses image tool's checks) the service plans and draws offline only."""
        self._blobs = blobs
        self._models = models
        self._inference = inference
        self._provenance = provenance  # signs what the offline model draws (app/services/provenance.py)

    # -- validation ------------------------------------------------------------------------------
    def _model(self, tenant: str, params: dict, default: str, *, only: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> str:
        """An image model (or one of `only`): 404 for ids nobody knows, 400 for a known model of another
        kind, naming the supported ones."""
        model_id = params.get("model")
        if model_id is None:
            model_id = DEFAULT_GPT_MODEL if default == "dall-e-2" and any(params.get(k) is not None for k in (*_GPT_ONLY, "stream")) else default
        models = self._models  # None for the Responses image tool: the catalogue file's image models
        known = model_id in only if only else model_id not in exclude and (
            models.supports(tenant, model_id, "image") if models is not None else model_id in image_models())
        if not known:
            if models is not None:
                models.get(tenant, model_id)  # 404 model_not_found for ids nobody knows
            supported = models.of_kind("image") if models is not None else image_models()
            raise invalid_value(model_id, only or tuple(m for m in supported if m not in exclude), "model")
        return model_id

    def _size(self, model_id: str, size: str | None, auto: tuple[int, int]) -> tuple[int, int]:
        fam = family(model_id)
        if fam != "gpt":
            allowed = _DALLE_SIZES[fam]
            size = size or "1024x1024"
            if size not in allowed:
                raise invalid_value(size, allowed, "size")
            return tuple(int(v) for v in size.split("x"))
        if size in (None, "auto"):
            return auto
        if size in _GPT_SIZES:
            return tuple(int(v) for v in size.split("x"))
        match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", size)
        if not _flexible_sizes(model_id) or match is None:
            raise invalid_value(size, (*_GPT_SIZES, "auto"), "size")
        width, height = int(match[1]), int(match[2])
        if width % 16 or height % 16 or max(width, height) > 3 * min(width, height) or max(width, height) > 3840 \
                or width * height > 3840 * 2160 or min(width, height) < 256:
            raise invalid_request(
                f"Invalid size '{size}': width and height must be multiples of 16, at least 256, with an aspect ratio "
                "between 1:3 and 3:1 and at most 3840x2160.", param="size", code="invalid_value")
        return width, height

    def _common(self, plan_kind: str, model_id: str, params: dict, auto_size: tuple[int, int]) -> model.ImageJob:
        fam = family(model_id)
        prompt = params.get("prompt") or ""
        if plan_kind != "variation":
            check_length(prompt, _PROMPT_MAX[fam], "prompt")
        n = params.get("n")
        check_range(n, 1, 10, "n")
        n = 1 if n is None else n
        if fam == "dall-e-3" and n != 1:
            raise invalid_request("You must provide n=1 for this model.", param="n", code="invalid_value")
        width, height = self._size(model_id, params.get("size"), auto_size)
        qualities = _QUALITIES[fam] + (("xhigh", "max") if model_id.startswith("gpt-image-2.5") else ())
        quality = params.get("quality") or "auto"
        if quality not in qualities:
            raise invalid_value(quality, qualities, "quality")
        plan = model.ImageJob(plan_kind, model_id, fam == "gpt", prompt, n, width, height, quality, "png", 100, "auto", params.get("response_format") or "url",
                    user=params.get("safety_identifier") or params.get("user"))
        if self._provenance is not None:
            plan.mark = self._provenance.mark
        if fam != "gpt":
            for name in ("stream", *_GPT_ONLY[:3], "partial_images"):
                if params.get(name) not in (None, False, "auto"):
                    raise unsupported(f"'{name}' is only supported for the GPT image models, not for '{model_id}'.", name)
            plan.style = params.get("style") or "vivid"
            return plan
        return self._gpt(plan, params)

    def _gpt(self, plan: model.ImageJob, params: dict) -> model.ImageJob:
        if params.get("response_format") not in (None, "b64_json"):
            raise unsupported(f"response_format '{params['response_format']}' is not supported for model '{plan.model}': "
                              "GPT image models always return base64-encoded images.", "response_format")
        if params.get("style") is not None:
            raise unsupported(f"'style' is not supported for model '{plan.model}'; describe the style in the prompt instead.", "style")
        plan.response_format = "b64_json"
        plan.quality = "medium" if plan.quality == "auto" else plan.quality
        plan.fmt = params.get("output_format") or "png"
        plan.background = "opaque" if (params.get("background") or "auto") == "auto" else params["background"]
        compression = params.get("output_compression")
        check_range(compression, 0, 100, "output_compression")
        if compression is not None and compression != 100 and plan.fmt not in ("jpeg", "webp"):
            raise unsupported("output_compression is only supported for the jpeg and webp output formats.", "output_compression")
        plan.compression = 100 if compression is None else compression
        if plan.background == "transparent" and plan.fmt not in ("png", "webp"):
            raise unsupported(f"Transparent backgrounds need output_format 'png' or 'webp', not '{plan.fmt}'.", "background")
        plan.stream = bool(params.get("stream"))
        partial = params.get("partial_images")
        check_range(partial, 0, 3, "partial_images")
        plan.partial_images = partial or 0
        for name in ("frame_count", "frame_duration_ms"):
            if params.get(name) is not None and plan.fmt != "gif":
                raise unsupported(f"'{name}' is only supported with output_format 'gif'.", name)
        check_range(params.get("frame_count"), 2, 16, "frame_count")
        plan.frames = params.get("frame_count") or 9
        check_range(params.get("frame_duration_ms"), 10, 655_350, "frame_duration_ms")
        plan.frame_ms = params.get("frame_duration_ms") or 200
        if plan.fmt in ("gif", "svg") and (plan.stream or plan.partial_images):
            raise unsupported(f"Streaming is not supported with output_format '{plan.fmt}'.", "stream")
        if plan.fmt == "svg" and plan.n != 1:
            raise unsupported("SVG output requires n=1.", "n")
        return plan

    def plan_generate(self, tenant: str, params: dict) -> model.ImageJob:
        model_id = self._model(tenant, params, "dall-e-2")
        return self._common("generate", model_id, params, (1024, 1024))

    def plan_edit(self, tenant: str, params: dict, images: list[Upload], mask: Upload | None) -> model.ImageJob:
        model_id = self._model(tenant, params, DEFAULT_GPT_MODEL, exclude=("dall-e-3",))
        if not images:
            raise invalid_request("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
        dalle = model_id == "dall-e-2"
        if len(images) > (1 if dalle else 16):
            raise invalid_request(f"Too many images: '{model_id}' accepts at most {1 if dalle else 16}.", param="image", code="invalid_value")
        decoded = [_decode(upload, dalle, 50 * 1024 * 1024) for upload in images]
        plan = self._common("edit", model_id, params, _auto_size(decoded[0].size))
        plan.inputs = decoded
        if mask is not None:
            plan.mask = _decode(mask, True, 4 * 1024 * 1024, square=False)
            if "A" not in plan.mask.getbands():
                raise invalid_request("Invalid mask image format - mask image missing alpha channel", param="mask", code="invalid_image_format")
            if plan.mask.size != decoded[0].size:
                raise invalid_request(f"The mask ({plan.mask.size[0]}x{plan.mask.size[1]}) must have the same dimensions as the image "
                                      f"({decoded[0].size[0]}x{decoded[0].size[1]}).", param="mask", code="invalid_value")
        plan.seed = model.seed_of(*(u.data for u in images), mask.data if mask else b"", plan.prompt)
        return plan

    def plan_variation(self, tenant: str, params: dict, image: Upload | None) -> model.ImageJob:
        model_id = self._model(tenant, params, "dall-e-2", only=("dall-e-2",))
        if image is None:
            raise invalid_request("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
        plan = self._common("variation", model_id, params, (1024, 1024))
        plan.inputs = [_decode(image, True, 4 * 1024 * 1024)]
        plan.seed = model.seed_of("variation", image.data)
        return plan

    # -- answers -------------------------------------------------------------------------------------
    async def answer(self, tenant: str, plan: model.ImageJob, params: dict, base_url: str, *, files: list[Upload] = (),
                     framing: str = "openai") -> MediaAnswer:
        """A planned request (`params` and `files` as the client sent them) answered by the provider its
        model routes to; the offline model's `url` answers become temporary links here."""
        path = {"generate": "images/generations", "edit": "images/edits", "variation": "images/variations"}[plan.kind]
        request = MediaRequest(path, params, list(files), plan, plan.stream, framing)
        answer = await self._inference.media(tenant, "images", plan.model, request)
        if answer.kind == "json" and plan.response_format == "url":  # drawn here: linked here
            answer.body["data"] = [{"url": await self._store(tenant, base64.b64decode(item.pop("b64_json")), plan.fmt, base_url), **item}
                                   for item in answer.body["data"]]
        return answer

    def events(self, plan: model.ImageJob) -> AsyncIterator[tuple[str, dict]]:
        """The offline model's image stream for a plan (the Responses image tool draws its partial images so)."""
        return media.image_events(plan)

    # -- temporary links -------------------------------------------------------------------------
    async def _store(self, tenant: str, data: bytes, ext: str, base_url: str) -> str:
        image_id = f"{int(time.time()) + URL_TTL_SECONDS:08x}{secrets.token_hex(20)}"
        await self._blobs.put(f"{tenant}/images/{image_id}.{ext}", data)
        return f"{base_url}/v1/images/content/{tenant}-{image_id}.{ext}"

    async def content(self, name: str) -> tuple[str, bytes]:
        """The media type and bytes behind a temporary link; 404 once it has expired."""
        match = _CONTENT_NAME.match(name)
        missing = APIError(f"No such image: {name}", status_code=404)
        if match is None:
            raise missing
        key = f"{match['tenant']}/images/{match['id']}.{match['ext']}"
        if int(match["id"][:8], 16) < time.time():
            await self._blobs.delete(key)
            raise missing
        try:
            return model.MEDIA_TYPES[match["ext"]], await self._blobs.read_all(key)
        except BlobNotFound:
            raise missing from None


def _auto_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    if width > height * 1.2:
        return 1536, 1024
    if height > width * 1.2:
        return 1024, 1536
    return 1024, 1024


def _decode(upload: Upload, png_square: bool, limit: int, *, square: bool = True):
    """A real PNG/JPEG/WebP (PNG and square for DALL·E 2, as OpenAI requires), within the size limit."""
    formats = "'image/png'" if png_square else "'image/jpeg', 'image/png', and 'image/webp'"
    if len(upload.data) > limit:
        raise invalid_request(f"Invalid file '{upload.field}': the image must be less than {limit // (1024 * 1024)} MB.",
                              param=upload.field, code="file_too_large")
    try:
        image, fmt = model.open_image(upload.data)
    except model.InvalidImage:
        raise invalid_request(f"Invalid file '{upload.field}': not a valid image. Supported file formats are {formats}.",
                              param=upload.field, code="invalid_image_format") from None
    if png_square and fmt != "PNG":
        raise invalid_request(f"Invalid file '{upload.field}': unsupported mimetype ('{model.INPUT_FORMATS[fmt]}'). "
                              f"Supported file formats are {formats}.", param=upload.field, code="invalid_image_format")
    if png_square and square and image.size[0] != image.size[1]:
        raise invalid_request(f"Invalid file '{upload.field}': the image must be square, got {image.size[0]}x{image.size[1]}.",
                              param=upload.field, code="invalid_image_format")
    return image
