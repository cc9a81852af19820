"""Token checks for worker (/internal/*) and operator (/admin/*) routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from services.errors import InvalidInput, Unauthorized
from settings import get_settings


def is_token_accepted(candidate: str | None, accepted: list[str]) -> bool:
    """Constant-time membership: every configured token is compared, whatever matches first."""
    if not candidate or not accepted:
        return False
    supplied = candidate.encode()
    matched = False
    for token in accepted:
        matched |= hmac.compare_digest(supplied, token.encode())
    return matched


@dataclass(frozen=True)
class WorkerIdentity:
    worker_id: str


def require_worker(
    x_worker_token: Annotated[str | None, Header()] = None,
    x_worker_id: Annotated[str | None, Header(max_length=128)] = None,
) -> WorkerIdentity:
    if not is_token_accepted(x_worker_token, get_settings().worker_tokens):
        raise Unauthorized("missing or invalid X-Worker-Token")
    worker_id = (x_worker_id or "").strip()
    if not worker_id:
        # Leases, heartbeats and commands are per worker: a shared fallback name would let
        # workers complete, extend or lose each other's leases.
        raise InvalidInput("X-Worker-ID header is required: name this worker (e.g. host-pid)")
    return WorkerIdentity(worker_id=worker_id)


def require_admin(x_admin_token: Annotated[str | None, Header()] = None) -> None:
    if not is_token_accepted(x_admin_token, get_settings().admin_tokens):
        raise Unauthorized("missing or invalid X-Admin-Token")


WorkerDep = Annotated[WorkerIdentity, Depends(require_worker)]
AdminDep = Annotated[None, Depends(require_admin)]
