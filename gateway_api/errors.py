"""Every error leaves the API in one envelope: {"error": {code, message, details?}, request_id}.

Codes are the original gateway's UPPER_SNAKE ones (``services.errors.ErrorCode``); the
envelope is documented on every route of the OpenAPI as ``ErrorEnvelope``, for each status the
route can answer (``gateway_api.api_docs``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from observability.request_context import get_request_id
from services.errors import ErrorCode, ServiceError
from services.public.quotas import QuotaError, TierRestricted

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMIT_EXCEEDED,
    500: ErrorCode.INTERNAL_ERROR,
    502: ErrorCode.SERVICE_UNAVAILABLE,
    503: ErrorCode.SERVICE_UNAVAILABLE,
}
# Lower-case codes a service error may still carry, and what the original calls them.
_RENAMED_CODES = {
    "invalid_input": ErrorCode.VALIDATION_ERROR,
    "bad_request": ErrorCode.INVALID_REQUEST,
    "rate_limited": ErrorCode.RATE_LIMIT_EXCEEDED,
    "quota_exceeded": ErrorCode.TIER_LIMIT_EXCEEDED,
    "tier_restricted": ErrorCode.FORBIDDEN,
}


class ErrorBody(BaseModel):
    code: ErrorCode = Field(description="Stable, UPPER_SNAKE as the original gateway spelled it")
    message: str = Field(description="What went wrong, naming the field or id concerned")
    details: Any = Field(None, description="Structured extras, e.g. the invalid fields")


class ErrorEnvelope(BaseModel):
    """The body of every error answer."""

    error: ErrorBody
    request_id: str = Field(description="Also in the X-Request-ID header")


def public_error_code(code: str) -> str:
    """``code`` as clients see it: the original's UPPER_SNAKE spelling."""
    if code.isupper():
        return code
    return _RENAMED_CODES.get(code) or code.upper()


def code_for_status(status_code: int) -> str:
    known = _HTTP_CODES.get(status_code)
    if known is not None:
        return known
    try:
        return HTTPStatus(status_code).name
    except ValueError:
        return "HTTP_ERROR"


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The envelope; ``extra`` adds top-level fields an original client expects."""
    error: dict[str, Any] = {"code": public_error_code(code), "message": message}
    if details is not None:
        error["details"] = jsonable_encoder(details)
    return JSONResponse(
        {"error": error, "request_id": get_request_id(), **(extra or {})},
        status_code=status_code,
        headers=dict(headers) if headers else None,
    )


def _describe_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]), "message": err["msg"]}
        for err in errors
    ]


async def _on_service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = dict(getattr(exc, "headers", None) or {})
    extra: dict[str, Any] = {}
    if isinstance(exc, QuotaError | TierRestricted):
        # The original answered a tier limit with {"detail": {"code": "TIER_LIMIT_EXCEEDED",
        # "message"}}; its clients read detail.code, so the envelope carries that too.
        extra["detail"] = {"code": ErrorCode.TIER_LIMIT_EXCEEDED.value, "message": exc.message}
        headers["X-Upgrade-Required"] = "true"
    return error_response(
        exc.status_code,
        exc.code,
        exc.message,
        details=exc.details,
        headers=headers or None,
        extra=extra,
    )


async def _on_http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = code_for_status(exc.status_code)
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _describe_validation_errors(list(exc.errors()))
    first = details[0] if details else {"field": "request", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    return error_response(422, ErrorCode.VALIDATION_ERROR, message, details=details)


_QUERY_CANCELED = "57014"


async def _on_pool_timeout(_: Request, exc: Exception) -> JSONResponse:
    # Every connection of the pool is busy (e.g. the public pool under a burst of searches).
    logger.warning("database pool exhausted: %s", exc)
    message = "the service is busy; retry shortly"
    return error_response(503, ErrorCode.SERVICE_UNAVAILABLE, message, headers={"Retry-After": "1"})


async def _on_operational_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)
    code = getattr(exc.orig, "pgcode", None)
    if code == _QUERY_CANCELED:
        message = "the request took longer than its time budget; narrow it and retry"
        return error_response(
            503, ErrorCode.SERVICE_UNAVAILABLE, message, headers={"Retry-After": "1"}
        )
    if code is None or exc.connection_invalidated:
        # No answer from the server at all: it is down or restarting.
        logger.warning("database unreachable: %s", exc.orig)
        message = "the database is unreachable; retry shortly"
        return error_response(
            503, ErrorCode.SERVICE_UNAVAILABLE, message, headers={"Retry-After": "1"}
        )
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(PoolTimeout, _on_pool_timeout)
    app.add_exception_handler(OperationalError, _on_operational_error)
