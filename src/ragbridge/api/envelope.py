"""OpenAI's error envelope for every failure: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragbridge import errors
from ragbridge.errors import RagbridgeError

log = logging.getLogger(__name__)

_TYPE_BY_STATUS = {405: "invalid_request_error"} | {
    error.status: error.type
    for error in vars(errors).values()
    if isinstance(error, type) and issubclass(error, RagbridgeError)
}
"""OpenAI's error type by status, for errors that come without one: as our errors have it."""


def error_body(
    message: str,
    status: int,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope as a dict."""
    return {
        "error": {
            "message": message,
            "type": type or _TYPE_BY_STATUS.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def error_response(
    message: str,
    status: int,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A JSONResponse carrying the OpenAI error envelope, typed by its status (an ASGI app: a
    middleware answers with it without reading the request body)."""
    body = error_body(message, status, param=param, code=code)
    return JSONResponse(body, status_code=status, headers=headers)


def ragbridge_error_response(exc: RagbridgeError) -> JSONResponse:
    """The envelope for one of our own errors, with its status, type, code and headers."""
    body = error_body(exc.message, exc.status, type=exc.type, param=exc.param, code=exc.code)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "Request body is not valid JSON.", None
    msg = first.get("msg", "Invalid value")
    return (f"{param}: {msg}" if param else str(msg)), param


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception FastAPI can raise through the OpenAI error envelope."""

    @app.exception_handler(RagbridgeError)
    async def _ragbridge_error(_: Request, exc: RagbridgeError) -> JSONResponse:
        return ragbridge_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(message, 400, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return error_response(str(exc.detail), exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response("Internal server error.", 500)
