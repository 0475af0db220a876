"""The OpenAI error body, raised from anywhere as one exception type.

`{"error": {"message", "type", "param", "code"}}` with the status OpenAI uses. Services raise these;
the app's exception handlers (app/api/errors.py) turn them, and every framework error, into that body.
"""
from __future__ import annotations


class APIError(Exception):
    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(message, status_code=400, param=param, code=code)


def not_found(kind: str, object_id: str, *, param: str | None = None) -> APIError:
    """OpenAI's wording for an unknown id: "No such File object: file-abc"."""
    return APIError(f"No such {kind} object: {object_id}", status_code=404, param=param)


def unauthorized(message: str) -> APIError:
    return APIError(message, status_code=401, code="invalid_api_key")


def too_large(message: str, *, param: str | None = None) -> APIError:
    return APIError(message, status_code=413, param=param, code="file_too_large")


def server_error(message: str = "The server had an error while processing your request. Sorry about that!") -> APIError:
    return APIError(message, status_code=500, type="server_error")
