"""Every error leaves as OpenAI's body: `{"error": {"message", "type", "param", "code"}}`.

Framework errors (unknown route, wrong method, bad query parameter types, body too large) are mapped
here too, so a client mistake is never a 500 and never a non-OpenAI shape.
"""
from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import MethodNotAllowedException

from app.core.errors import APIError, server_error

log = logging.getLogger("understudy.api")

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error", 404: "invalid_request_error",
          405: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error"}


def _response(error: APIError) -> Response:
    return Response(content=error.body(), status_code=error.status_code, headers=error.headers or None)


def api_error_handler(_: Request, exc: APIError) -> Response:
    return _response(exc)


def _invalid_url(request: Request) -> APIError:
    return APIError(f"Invalid URL ({request.method} {request.url.path})", status_code=404)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    # Our handlers raise APIError for unknown ids: a NotFoundException can only be an unknown route.
    if isinstance(exc, NotFoundException):
        return _response(_invalid_url(request))
    if isinstance(exc, MethodNotAllowedException):
        return _response(APIError(_invalid_url(request).message, status_code=405))
    if isinstance(exc, ValidationException):
        return _response(_from_validation(exc))
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
        return _response(server_error())
    message = exc.detail or "Invalid request."
    if status == 413:
        message = "The request body is too large."
    return _response(APIError(message, status_code=status, type=_TYPES.get(status, "invalid_request_error")))


# Litestar says "Expected `int | null`, got `str`"; OpenAI says "expected an integer".
_EXPECTED = (("int", "an integer"), ("float", "a number"), ("bool", "a boolean"), ("str", "a string"))


def _from_validation(exc: ValidationException) -> APIError:
    """Litestar's own checks (query and path parameter types) in OpenAI's words."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict) and item.get("key"):
            key, message = item["key"], str(item.get("message", ""))
            expected = next((words for name, words in _EXPECTED if f"`{name}" in message), None)
            detail = f"expected {expected}" if expected else message or "invalid value"
            return APIError(f"Invalid type for '{key}': {detail}.", status_code=400, param=key, code="invalid_type")
    return APIError(exc.detail or "Invalid request.", status_code=400)


def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _response(server_error())


def translated_handlers(translate, *, with_request_id: bool = False) -> dict:
    """The same handlers for a router of another protocol (Anthropic, Gemini): the OpenAI body each one
    builds is rewritten by `translate(status, body)` (`translate(status, body, request_id)` for a protocol
    whose error body names the request); status and headers (Retry-After…) are kept."""

    def _translated(request: Request, response: Response) -> Response:
        if with_request_id:
            rid = request.scope.get("state", {}).get("request_id")
            content = translate(response.status_code, response.content, rid.decode() if rid else None)
        else:
            content = translate(response.status_code, response.content)
        return Response(content=content, status_code=response.status_code, headers=dict(response.headers))

    return {
        APIError: lambda request, exc: _translated(request, api_error_handler(request, exc)),
        HTTPException: lambda request, exc: _translated(request, http_exception_handler(request, exc)),
        Exception: lambda request, exc: _translated(request, unexpected_error_handler(request, exc)),
    }


EXCEPTION_HANDLERS = {
    APIError: api_error_handler,
    HTTPException: http_exception_handler,
    Exception: unexpected_error_handler,
}
