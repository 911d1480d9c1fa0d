"""Hub errors: one exception type and handlers so every error body is an ``ErrorBody``.

Routes and services raise ``HubError``; FastAPI's own validation errors, unknown routes
and unexpected exceptions are converted too, so a client only ever parses one shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dshub.models import ErrorBody, ErrorDetail, ErrorInfo

log = logging.getLogger("dshub.hub")

_STATUS_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    429: "too_many_requests",
    415: "unsupported_media_type",
    422: "invalid",
}


class HubError(Exception):
    """An error with an HTTP status, a stable code and a one-line message."""

    def __init__(
        self, status: int, code: str, message: str, details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def not_found(what: str) -> HubError:
    return HubError(404, "not_found", f"{what} not found")


def invalid(message: str, details: list[ErrorDetail] | None = None) -> HubError:
    return HubError(422, "invalid", message, details)


def error_response(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=details or []))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _hub_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors()[:100]:
        # Never echo the raw input back: it may be huge or contain NUL bytes.
        details.append(ErrorDetail(path=_loc(err.get("loc", ())), problem=str(err.get("msg", "invalid"))))
    first = details[0] if details else None
    msg = f"invalid request: {first.path}: {first.problem}" if first else "invalid request"
    return error_response(422, "invalid", msg, details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    if exc.status_code == 404:
        message = "not found: no such route"
    elif isinstance(exc.detail, str):
        message = exc.detail
    else:
        message = "request failed"
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _concurrent(_request: Request, exc: Exception) -> JSONResponse:
    # Two requests changed the same rows (a PATCH or a session open racing a DELETE of the
    # dataset, say): the loser's rows are gone or changed underneath it. Not a bug of the
    # caller's input and not the hub's: a conflict, retry.
    log.info("concurrent change: %s", type(exc).__name__)
    return error_response(
        409, "conflict", "the dataset changed at the same time (edited or deleted by another request); retry"
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # Logged with the traceback for the operator; the client gets no internals.
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal", "internal error in the hub; see the hub's log")


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so every error leaves the hub as an ErrorBody."""
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in (StaleDataError, ObjectDeletedError, IntegrityError):
        app.add_exception_handler(exc_type, _concurrent)
    app.add_exception_handler(Exception, _unexpected)


# For route decorators: document the error body on the usual statuses.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody} for s in (401, 403, 404, 409, 410, 413, 422, 429)
}
