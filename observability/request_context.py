"""The current request id, set by the API middleware and restored inside Celery tasks."""

from __future__ import annotations

import random
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # A correlation id, not a secret: the process's PRNG, not a getrandom() call per request.
    return f"{random.getrandbits(128):032x}"


def get_request_id() -> str | None:
    return _request_id.get()


def set_request_id(request_id: str | None) -> None:
    _request_id.set(request_id)


def sanitize_request_id(candidate: str | None) -> str:
    """Accept a caller's id only if it is short and plain; otherwise make a new one."""
    if candidate and len(candidate) <= 64 and candidate.replace("-", "").isalnum():
        return candidate
    return new_request_id()
