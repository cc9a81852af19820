"""What a gateway call can raise: one hierarchy, split by what the caller should do about it.

``GatewayError`` is the root. An answer in the gateway's error envelope becomes an ``ApiError``
subclass named after the problem, carrying the envelope's ``code`` and ``message``; transport
trouble that outlasted the retries is a ``GatewayUnreachable``; a call that may or may not have
reached the gateway, and must not be repeated blindly, is an ``OutcomeUnknown``.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """Anything a gateway call raises."""


class ApiError(GatewayError):
    """The gateway answered with an error status (after any retries)."""

    status_code: int = 0

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        details: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.request_id = request_id
        self.details = details
        self.retry_after_s = retry_after_s


class InvalidRequest(ApiError):
    """400: the request was not well-formed."""


class Unauthorized(ApiError):
    """401: the worker token is missing or not accepted."""


class Forbidden(ApiError):
    """403: e.g. the token may not act as this worker id."""


class NotFound(ApiError):
    """404: e.g. the task does not exist."""


class LeaseConflict(ApiError):
    """409: this worker no longer holds the lease (expired, taken over, or a stale token)."""


class PayloadTooLarge(ApiError):
    """413: a body or raw file over the gateway's limit."""


class ValidationFailed(ApiError):
    """422: a field is missing or wrong; the message names it."""


class RateLimited(ApiError):
    """429, still refused after the retries."""


class ServerError(ApiError):
    """5xx, still failing after the retries."""


class GatewayUnreachable(GatewayError):
    """No answer (connection refused, reset, timed out) even after the retries."""


class OutcomeUnknown(GatewayError):
    """The request was sent but its answer was lost: the gateway may have acted on it.

    Raised only for calls that are unsafe to repeat (leasing, failing a task); repeating a
    lease would take new tasks while the ones of the lost answer stay leased to this worker.
    """


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: LeaseConflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}


def error_class_for_status(status_code: int) -> type[ApiError]:
    if status_code >= 500:
        return ServerError
    return _BY_STATUS.get(status_code, ApiError)
