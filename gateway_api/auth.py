"""Token checks for worker (/internal/*) and operator (/admin/*) routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header

from services.errors import Unauthorized
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
    return WorkerIdentity(worker_id=(x_worker_id or "anonymous").strip() or "anonymous")


def require_admin(x_admin_token: Annotated[str | None, Header()] = None) -> None:
    if not is_token_accepted(x_admin_token, get_settings().admin_tokens):
        raise Unauthorized("missing or invalid X-Admin-Token")


WorkerDep = Annotated[WorkerIdentity, Depends(require_worker)]
AdminDep = Annotated[None, Depends(require_admin)]
