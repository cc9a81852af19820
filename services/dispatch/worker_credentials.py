"""Per-worker tokens, managed like API keys: 256 random bits, shown once, stored as sha256.

A token reads ``tlw_<prefix>_<secret>`` and is bound to the worker ids it may use: one exact
id (``scraper-7``) or every id under a prefix (``fleet-a-*``). Tokens from
``GATEWAY_WORKER_TOKENS`` are the unbound form (see ``services.dispatch.worker_identity``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import WorkerCredential
from services.errors import InvalidInput, NotFound
from services.text_checks import text_problem

TOKEN_SCHEME = "tlw"
MAX_WORKER_ID_CHARS = 128
_PREFIX_BYTES = 6
_SECRET_BYTES = 32


@dataclass(frozen=True)
class IssuedWorkerToken:
    token: str
    record: WorkerCredential


def hash_worker_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def worker_id_problem(worker_id: str) -> str | None:
    """Why ``worker_id`` cannot name a worker, or ``None``."""
    if not worker_id:
        return "must not be empty"
    if "*" in worker_id:
        return "must not contain '*'"
    return text_problem(worker_id, max_chars=MAX_WORKER_ID_CHARS)


def check_worker_ids_pattern(pattern: str) -> str:
    """An exact worker id, or a non-empty prefix followed by one ``*``."""
    pattern = pattern.strip()
    problem = worker_id_problem(pattern.removesuffix("*"))
    if problem:
        raise InvalidInput(f"worker_ids: {problem}")
    return pattern


def matches_worker_ids(pattern: str, worker_id: str) -> bool:
    if pattern.endswith("*"):
        return worker_id.startswith(pattern[:-1])
    return worker_id == pattern


def create_worker_credential(session: Session, *, worker_ids: str, owner: str) -> IssuedWorkerToken:
    owner = owner.strip()
    if not owner:
        raise InvalidInput("owner: must not be empty")
    prefix = f"{TOKEN_SCHEME}_{secrets.token_urlsafe(_PREFIX_BYTES)}"
    token = f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    record = WorkerCredential(
        prefix=prefix,
        token_hash=hash_worker_token(token),
        worker_ids=check_worker_ids_pattern(worker_ids),
        owner=owner,
    )
    session.add(record)
    session.flush()
    return IssuedWorkerToken(token=token, record=record)


def list_worker_credentials(
    session: Session, *, include_revoked: bool = False
) -> list[WorkerCredential]:
    query = select(WorkerCredential).order_by(WorkerCredential.id)
    if not include_revoked:
        query = query.where(WorkerCredential.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_worker_credential(session: Session, credential_id: int) -> WorkerCredential:
    """Idempotent; the token is refused from the next directory refresh on (seconds)."""
    record = session.get(WorkerCredential, credential_id)
    if record is None:
        raise NotFound(f"worker credential {credential_id} does not exist")
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        session.flush()
    return record
