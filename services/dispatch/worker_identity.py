"""Who a worker is: its token's credential, and the worker id that credential may use.

Two kinds of credential:

- *bound*: a per-worker token (``worker_credentials``) names the ids it may use;
- *unbound*: a ``GATEWAY_WORKER_TOKENS`` token (the original gateway's shared fleet token,
  the local stack's and the tests'), which may use any id that no bound credential covers.

Either way a worker id is *claimed* by the first credential that uses it and stays bound to
that credential for as long as it is active (configured, or not revoked): a second token can
never act as, heartbeat as, or complete the leases of, a worker id another token uses. Workers
that share one unbound token share one credential and are indistinguishable to the gateway;
give each its own bound token to keep them apart. Leases are checked against the worker id,
so with ids bound to credentials a call without ``lease_token`` is accepted only from the
credential whose worker holds the lease.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from db.models import WorkerCredential, WorkerIdentityClaim
from services.dispatch.worker_credentials import (
    hash_worker_token,
    matches_worker_ids,
    worker_id_problem,
)
from services.errors import Forbidden, InvalidInput

logger = logging.getLogger(__name__)
DIRECTORY_REFRESH_S = 5.0
ANONYMOUS_PREFIX = "anon-"
_ANONYMOUS_HASH_CHARS = 12
_CLAIM_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Credential:
    key: str  # what claims record: "config:<sha256 prefix>" or "db:<id>"
    name: str  # not secret: for logs and errors
    worker_ids: str | None  # None: unbound (a GATEWAY_WORKER_TOKENS token)

    def may_use(self, worker_id: str) -> bool:
        return self.worker_ids is None or matches_worker_ids(self.worker_ids, worker_id)


@dataclass(frozen=True)
class CredentialDirectory:
    """Every active credential by the sha256 of its token: a lookup costs one hash."""

    by_token_hash: Mapping[str, Credential]
    loaded_at: float = 0.0
    active_keys: frozenset[str] = field(init=False)
    bound_patterns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        credentials = self.by_token_hash.values()
        object.__setattr__(self, "active_keys", frozenset(c.key for c in credentials))
        patterns = tuple(c.worker_ids for c in credentials if c.worker_ids is not None)
        object.__setattr__(self, "bound_patterns", patterns)

    def authenticate(self, token: str | None) -> Credential | None:
        if not token:
            return None
        return self.by_token_hash.get(hash_worker_token(token))

    def is_reserved(self, worker_id: str) -> bool:
        """Covered by a bound credential, so no unbound token may take it."""
        return any(matches_worker_ids(pattern, worker_id) for pattern in self.bound_patterns)


def derived_worker_id(credential: Credential, client_host: str) -> str:
    """The id of a worker that does not name itself (the original's clients may not).

    One per credential and client address, never shared across tokens or hosts: workers
    behind one token on one host are one worker to the gateway, as they were to the original
    (which named them all ``unknown``). A per-worker token gets an id it may use: its exact
    id, or ``<prefix>anon-<hash>`` under its prefix.
    """
    pattern = credential.worker_ids
    if pattern is not None and not pattern.endswith("*"):
        return pattern
    digest = hashlib.sha256(f"{credential.key}|{client_host}".encode()).hexdigest()
    worker_id = f"{(pattern or '').removesuffix('*')}{ANONYMOUS_PREFIX}"
    worker_id += digest[:_ANONYMOUS_HASH_CHARS]
    if worker_id_problem(worker_id):
        raise InvalidInput("X-Worker-ID header is required with this worker token")
    return worker_id


def config_credential(token: str) -> Credential:
    digest = hash_worker_token(token)
    return Credential(
        key=f"config:{digest[:16]}", name=f"configured token {digest[:8]}", worker_ids=None
    )


def build_directory(
    config_tokens: Iterable[str], records: Iterable[WorkerCredential], *, loaded_at: float
) -> CredentialDirectory:
    by_hash = {hash_worker_token(t): config_credential(t) for t in config_tokens}
    for record in records:
        by_hash[record.token_hash] = Credential(
            key=f"db:{record.id}", name=record.prefix, worker_ids=record.worker_ids
        )
    return CredentialDirectory(by_hash, loaded_at)


def load_directory(session: Session, config_tokens: Iterable[str]) -> CredentialDirectory:
    records = session.scalars(
        select(WorkerCredential).where(WorkerCredential.revoked_at.is_(None))
    ).all()
    return build_directory(config_tokens, records, loaded_at=time.monotonic())


def claim_worker_id(
    session: Session, worker_id: str, credential: Credential, directory: CredentialDirectory
) -> None:
    """Bind ``worker_id`` to ``credential``, or 403 when it is not this credential's to use.

    A claim held by a credential that is no longer active (revoked, or removed from the
    configuration) passes to the caller: rotating a fleet token must not strand its ids.
    """
    if not credential.may_use(worker_id):
        raise Forbidden(f"this worker token may not use worker id {worker_id!r}")
    if credential.worker_ids is None and directory.is_reserved(worker_id):
        raise Forbidden(f"worker id {worker_id!r} is reserved for a per-worker token")
    inserted = session.execute(
        insert(WorkerIdentityClaim)
        .values(worker_id=worker_id, credential_key=credential.key)
        .on_conflict_do_nothing(index_elements=[WorkerIdentityClaim.worker_id])
        .returning(WorkerIdentityClaim.worker_id)
    ).first()
    if inserted is not None:
        return
    holder = session.scalar(
        select(WorkerIdentityClaim.credential_key)
        .where(WorkerIdentityClaim.worker_id == worker_id)
        .with_for_update()
    )
    if holder == credential.key:
        return
    if holder is not None and holder not in directory.active_keys:
        session.execute(
            update(WorkerIdentityClaim)
            .where(WorkerIdentityClaim.worker_id == worker_id)
            .values(credential_key=credential.key)
        )
        return
    # Not naming the other credential: the caller learns nothing it could use.
    raise Forbidden(f"worker id {worker_id!r} belongs to another worker token")


class WorkerIdentityCache:
    """This process's credential directory (reloaded every few seconds) and the claims it has
    already confirmed, so a worker request normally costs no database round trip.

    A confirmed claim can only change hands when its credential stops being active, and then
    that credential no longer authenticates, so remembering confirmed claims is safe.
    """

    def __init__(
        self,
        load: Callable[[], CredentialDirectory],
        fallback: Callable[[], CredentialDirectory],
        *,
        refresh_s: float = DIRECTORY_REFRESH_S,
    ) -> None:
        self._load, self._fallback, self._refresh_s = load, fallback, refresh_s
        self._directory: CredentialDirectory | None = None
        self._claims: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()  # held while the directory reloads (a query)
        # The claims have their own: the event loop checks them, and must not wait on a reload.
        self._claims_lock = threading.Lock()

    def is_fresh(self) -> bool:
        directory = self._directory
        return directory is not None and time.monotonic() - directory.loaded_at < self._refresh_s

    def directory(self) -> CredentialDirectory:
        """The current directory; blocks on the database only when it is due for a reload."""
        if self.is_fresh():
            assert self._directory is not None
            return self._directory
        with self._lock:
            if not self.is_fresh():
                self._directory = self._reload()
            assert self._directory is not None
            return self._directory

    def _reload(self) -> CredentialDirectory:
        try:
            return self._load()
        except SQLAlchemyError:
            # The configured tokens keep working through a database outage; per-worker tokens
            # keep the last directory that was read.
            logger.warning("worker credentials could not be reloaded", exc_info=True)
            previous = self._directory or self._fallback()
            return CredentialDirectory(previous.by_token_hash, time.monotonic())

    def has_confirmed(self, worker_id: str, credential_key: str) -> bool:
        with self._claims_lock:
            if self._claims.get(worker_id) != credential_key:
                return False
            self._claims.move_to_end(worker_id)
            return True

    def confirm(self, worker_id: str, credential_key: str) -> None:
        with self._claims_lock:
            self._claims[worker_id] = credential_key
            self._claims.move_to_end(worker_id)
            while len(self._claims) > _CLAIM_CACHE_SIZE:
                self._claims.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (after an admin change in this process, and between tests)."""
        with self._lock:
            self._directory = None
        with self._claims_lock:
            self._claims.clear()
