"""One hierarchy of service errors. Each carries its HTTP status and a stable error code.

Codes are spelled as the original gateway spelled them (UPPER_SNAKE, its contract's error
table), so its clients keep matching on them; codes it never had follow the same spelling.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"  # 400: a request that is not even well-formed
    UNAUTHORIZED = "UNAUTHORIZED"  # 401
    FORBIDDEN = "FORBIDDEN"  # 403, e.g. a tier that does not include the feature
    TIER_LIMIT_EXCEEDED = "TIER_LIMIT_EXCEEDED"  # 403: the tier's daily quota is used up
    NOT_FOUND = "NOT_FOUND"  # 404
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # 405
    CONFLICT = "CONFLICT"  # 409
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # 413
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # 415
    VALIDATION_ERROR = "VALIDATION_ERROR"  # 422: a field is missing or wrong; names it
    RATE_LIMIT_EXCEEDED = "RATE_LIMIT_EXCEEDED"  # 429
    INTERNAL_ERROR = "INTERNAL_ERROR"  # 500
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # 502/503: a dependency is down or busy


class ServiceError(Exception):
    status_code = 500
    code: str = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(ServiceError):
    status_code = 422
    code = ErrorCode.VALIDATION_ERROR


class NotFound(ServiceError):
    status_code = 404
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    status_code = 409
    code = ErrorCode.CONFLICT


class Unauthorized(ServiceError):
    status_code = 401
    code = ErrorCode.UNAUTHORIZED


class Forbidden(ServiceError):
    status_code = 403
    code = ErrorCode.FORBIDDEN


class PayloadTooLarge(ServiceError):
    status_code = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimited(ServiceError):
    status_code = 429
    code = ErrorCode.RATE_LIMIT_EXCEEDED


class ServiceUnavailable(ServiceError):
    status_code = 503
    code = ErrorCode.SERVICE_UNAVAILABLE
