"""Every error leaves the API in one envelope: {"error": {code, message, details?}, request_id}."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from observability.request_context import get_request_id
from services.errors import ServiceError

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = jsonable_encoder(details)
    return JSONResponse(
        {"error": error, "request_id": get_request_id()},
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
    headers = getattr(exc, "headers", None)
    return error_response(
        exc.status_code, exc.code, exc.message, details=exc.details, headers=headers
    )


async def _on_http_exception(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _describe_validation_errors(list(exc.errors()))
    first = details[0] if details else {"field": "request", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    return error_response(422, "invalid_input", message, details=details)


_QUERY_CANCELED = "57014"


async def _on_pool_timeout(_: Request, exc: Exception) -> JSONResponse:
    # Every connection of the pool is busy (e.g. the public pool under a burst of searches).
    logger.warning("database pool exhausted: %s", exc)
    message = "the service is busy; retry shortly"
    return error_response(503, "service_unavailable", message, headers={"Retry-After": "1"})


async def _on_operational_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)
    if getattr(exc.orig, "pgcode", None) == _QUERY_CANCELED:
        message = "the request took longer than its time budget; narrow it and retry"
        return error_response(503, "service_unavailable", message, headers={"Retry-After": "1"})
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(PoolTimeout, _on_pool_timeout)
    app.add_exception_handler(OperationalError, _on_operational_error)
