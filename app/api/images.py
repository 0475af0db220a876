"""/v1/images: generations (JSON), edits and variations (multipart), and the temporary links that
`response_format: "url"` answers with (`GET /v1/images/content/...`, no key needed, as OpenAI's are).

Multipart forms are checked against the SDK's params TypedDicts like JSON bodies are: `read_form`
turns the text fields into typed values (`n=2` -> 2, `timestamp_granularities[]=word` -> ["word"],
`svg[model]=x` -> {"model": "x"}) following the TypedDict's hints, then `validate_params` applies
OpenAI's wording. The audio controller uses it too.
"""
from __future__ import annotations

import collections.abc
import json
import re
import typing
from dataclasses import dataclass
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Stream
from openai.types import image_create_variation_params, image_edit_params, image_generate_params
from typing_extensions import TypedDict

from app.api.deps import caller
from app.api.links import public_base_url
from app.api.media import media_response
from app.core.errors import APIError, invalid_request
from app.core.multipart import Spool, bounded, iter_parts
from app.core.validation import parse_json_params, validate_params
from app.services.images import ImagesService, Upload
from app.settings import IMAGE_STREAM_FORMATS


class _GenerateParams(image_generate_params.ImageGenerateParamsBase, total=False):
    stream: typing.Optional[bool]


def form_type(params_type, drop: set[str], extra: dict[str, Any] | None = None):
    """The SDK's params TypedDict without its file fields (those arrive as file parts)."""
    hints = typing.get_type_hints(params_type, include_extras=True)
    fields = {k: v for k, v in hints.items() if k not in drop} | (extra or {})
    return TypedDict(f"{params_type.__name__}Form", fields, total=False)


_EditForm = form_type(image_edit_params.ImageEditParamsBase, {"image", "mask", "markup"}, {"stream": typing.Optional[bool]})
_VariationForm = form_type(image_create_variation_params.ImageCreateVariationParams, {"image"})


@dataclass
class FilePart:
    name: str  # the field name without any [] suffix
    filename: str | None
    content_type: str | None
    data: bytes


def _unwrap(hint):
    while typing.get_origin(hint) in (typing.Required, typing.NotRequired, typing.Annotated):
        hint = typing.get_args(hint)[0]
    return hint


def _flatten(hint) -> list:
    """A hint's alternatives, with Required/Optional/Union opened up."""
    hint = _unwrap(hint)
    if typing.get_origin(hint) is typing.Union:
        return [alt for arg in typing.get_args(hint) for alt in _flatten(arg)]
    return [hint]


def _is_list(hint) -> bool:
    return any(typing.get_origin(alt) in (list, tuple, collections.abc.Sequence, collections.abc.Iterable) for alt in _flatten(hint))


def _element(hint):
    for alt in _flatten(hint):
        args = typing.get_args(alt)
        if args and typing.get_origin(alt) is not typing.Literal:
            return args[0]
    return str


def _coerce(value: str, hint) -> Any:
    """A form string as the type the hint asks for, when it reads as one; else the string (the
    validator then names the expected type)."""
    alternatives = _flatten(hint)
    types = {alt for alt in alternatives if isinstance(alt, type)}
    if bool in types and value in ("true", "false"):
        return value == "true"
    if int in types and re.fullmatch(r"-?\d+", value):
        return int(value)
    if float in types and re.fullmatch(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value):
        return float(value)
    if value.startswith("{") and any(typing.is_typeddict(alt) or alt is dict for alt in alternatives):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _sub_hints(hint) -> dict:
    for alt in _flatten(hint):
        if typing.is_typeddict(alt):
            return typing.get_type_hints(alt, include_extras=True)
    return {}


def _assign(body: dict, hints: dict, path: list[str], value: str) -> None:
    key, rest = path[0], path[1:]
    hint = hints.get(key, str)
    if not rest:
        if _is_list(hint):  # a bare `include=logprobs` for a list field is one element
            body.setdefault(key, []).append(_coerce(value, _element(hint)))
        else:
            body[key] = _coerce(value, hint)
    elif rest[0] == "":
        items = body.setdefault(key, [])
        if isinstance(items, list):
            items.append(_coerce(value, _element(hint)))
    else:
        nested = body.setdefault(key, {})
        if isinstance(nested, dict):
            _assign(nested, _sub_hints(hint), rest, value)


async def read_form(
    request: Request, params_type, file_fields: dict[str, int], *, file_limit: int, body_limit: int, too_large: APIError | None = None
) -> tuple[dict, list[FilePart]]:
    """The text fields, typed and validated against `params_type`, and the file parts: at most
    `file_fields[name]` parts of each file field, each at most `file_limit` bytes, the whole body at most
    `body_limit`. A part beyond those, or a file under an unknown name, is refused as soon as its headers
    are read; file parts are spooled (memory up to a small threshold, disk past it) and only read into
    memory once the whole form is in and valid."""
    hints = typing.get_type_hints(params_type, include_extras=True)
    body: dict = {}
    spooled: list[tuple[str, str | None, str | None, Spool]] = []
    counts: dict[str, int] = {}
    try:
        async for part in iter_parts(request.headers.get("content-type"), bounded(request, body_limit)):
            path = re.findall(r"^[^\[]+|(?<=\[)[^\]]*(?=\])", part.name) or [part.name]
            name = path[0]
            if name in file_fields and not (len(path) > 1 and path[1]):  # `video[id]` is a text field, `image[]` a file
                counts[name] = counts.get(name, 0) + 1
                if counts[name] > file_fields[name]:
                    raise invalid_request(f"Too many files for '{name}': at most {file_fields[name]}.", param=name, code="invalid_value")
                spool = Spool()
                spooled.append((name, part.filename, part.content_type, spool))
                async for chunk in part:
                    await spool.write(chunk)
                    if spool.size > file_limit:
                        raise too_large or invalid_request(f"The file '{name}' is too large.", param=name)
            elif part.filename is not None:
                raise invalid_request(f"Unknown parameter: '{part.name}'.", param=part.name, code="unknown_parameter")
            else:
                _assign(body, hints, path, await part.text())
        params = validate_params(params_type, body)
        return params, [FilePart(name, filename, content_type, await spool.read()) for name, filename, content_type, spool in spooled]
    finally:
        for *_, spool in spooled:
            spool.close()


def _uploads(files: list[FilePart], name: str) -> list[Upload]:
    return [Upload(f.name, f.filename, f.content_type, f.data) for f in files if f.name == name]


def _stream_format(request: Request) -> str:
    """The server's image stream framing, or the one this request asks for (X-Understudy-Image-Stream)."""
    asked = request.headers.get("x-understudy-image-stream")
    if asked is None:
        return caller(request).platform.settings.image_stream_format
    if asked not in IMAGE_STREAM_FORMATS:
        raise invalid_request(
            f"Invalid value for the X-Understudy-Image-Stream header: '{asked}'. Supported values are: "
            + " and ".join(f"'{name}'" for name in IMAGE_STREAM_FORMATS) + ".",
            code="invalid_value",
        )
    return asked


class ImagesController(Controller):
    path = "/images"

    async def _answer(self, request: Request, service: ImagesService, tenant: str, plan, params: dict, files: list[Upload] = ()) -> dict | Stream:
        framing = _stream_format(request) if plan.stream else "openai"  # the header is only read (and checked) for streams
        return media_response(await service.answer(tenant, plan, params, public_base_url(request), files=files, framing=framing))

    @post("/generations", status_code=200)
    async def generations(self, request: Request) -> dict | Stream:
        platform, tenant = caller(request)
        params = parse_json_params(_GenerateParams, await request.body())
        return await self._answer(request, platform.images, tenant, platform.images.plan_generate(tenant, params), params)

    @post("/edits", status_code=200, request_max_body_size=None)
    async def edits(self, request: Request) -> dict | Stream:
        platform, tenant = caller(request)
        params, files = await read_form(request, _EditForm, {"image": 16, "mask": 1, "markup": 1}, file_limit=50 * 1024 * 1024,
                                        body_limit=platform.settings.max_image_body_bytes)
        images, masks = _uploads(files, "image"), _uploads(files, "mask")
        plan = platform.images.plan_edit(tenant, params, images, masks[0] if masks else None)
        return await self._answer(request, platform.images, tenant, plan, params, [*images, *masks, *_uploads(files, "markup")])

    @post("/variations", status_code=200, request_max_body_size=None)
    async def variations(self, request: Request) -> dict | Stream:
        platform, tenant = caller(request)
        params, files = await read_form(request, _VariationForm, {"image": 1}, file_limit=4 * 1024 * 1024 + 1,
                                        body_limit=platform.settings.max_image_body_bytes)
        images = _uploads(files, "image")
        plan = platform.images.plan_variation(tenant, params, images[0] if images else None)
        return await self._answer(request, platform.images, tenant, plan, params, images)


@get("/v1/images/content/{name:str}")
async def image_content(request: Request, name: str) -> Response:
    """A temporary image link: outside the authenticated /v1 router, like OpenAI's signed URLs."""
    media_type, data = await request.app.state.platform.images.content(name)
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})
