"""Token checks for worker (/internal/*) and operator (/admin/*) routes.

A worker is a credential (its token) plus the worker id it names with ``X-Worker-ID``; the id
must be one the credential may use (``services.dispatch.worker_identity``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Header, Request, Security
from fastapi.concurrency import run_in_threadpool

from db.session import session_scope
from gateway_api.api_docs import ADMIN_TOKEN, WORKER_TOKEN
from services.dispatch.worker_credentials import worker_id_problem
from services.dispatch.worker_identity import (
    Credential,
    CredentialDirectory,
    WorkerIdentityCache,
    build_directory,
    claim_worker_id,
    derived_worker_id,
    load_directory,
)
from services.errors import InvalidInput, Unauthorized
from services.public.client_address import client_address
from settings import get_settings


def is_token_accepted(candidate: str | None, accepted: list[str]) -> bool:
    """Constant-time membership: every configured token is compared, whatever matches first."""
    if not candidate or not accepted:
        return False
    supplied = candidate.encode("utf-8", "surrogatepass")
    matched = False
    for token in accepted:
        matched |= hmac.compare_digest(supplied, token.encode())
    return matched


@dataclass(frozen=True)
class WorkerIdentity:
    """The worker id a request acts as, and the credential it is bound to."""

    worker_id: str
    credential: Credential


def _load_directory() -> CredentialDirectory:
    with session_scope() as session:
        return load_directory(session, get_settings().worker_tokens)


def _configured_only() -> CredentialDirectory:
    return build_directory(get_settings().worker_tokens, [], loaded_at=0.0)


@lru_cache(maxsize=1)
def worker_identity_cache() -> WorkerIdentityCache:
    return WorkerIdentityCache(_load_directory, _configured_only)


def authenticate_worker_token(token: str | None) -> Credential:
    credential = worker_identity_cache().directory().authenticate(token)
    if credential is None:
        raise Unauthorized("missing or invalid X-Worker-Token")
    return credential


def bind_worker_id(worker_id: str, credential: Credential) -> WorkerIdentity:
    """The identity, once ``worker_id`` is known to be this credential's (claimed if new)."""
    cache = worker_identity_cache()
    if not cache.has_confirmed(worker_id, credential.key):
        with session_scope() as session:
            claim_worker_id(session, worker_id, credential, cache.directory())
        cache.confirm(worker_id, credential.key)
    return WorkerIdentity(worker_id=worker_id, credential=credential)


def _client_host(request: Request) -> str:
    peer = request.client.host if request.client else None
    address = client_address(
        peer, request.headers.get("x-forwarded-for"), get_settings().trusted_proxy_networks
    )
    return str(address) if address is not None else f"peer:{(peer or 'unknown')[:64]}"


def _worker_id_of(request: Request, credential: Credential, named: str | None) -> str:
    worker_id = (named or "").strip()
    if not worker_id:
        # The original's clients may not name themselves (an empty header meant unnamed there
        # too). Leases, heartbeats and commands are per worker, so the fallback is never one
        # shared name (the original's "unknown").
        return derived_worker_id(credential, _client_host(request))
    if problem := worker_id_problem(worker_id):
        raise InvalidInput(f"X-Worker-ID: {problem}")
    return worker_id


def _identify_worker(request: Request, token: str | None, named: str | None) -> WorkerIdentity:
    credential = authenticate_worker_token(token)
    return bind_worker_id(_worker_id_of(request, credential, named), credential)


async def require_worker(
    request: Request,
    x_worker_token: Annotated[str | None, Security(WORKER_TOKEN)],
    x_worker_id: Annotated[
        str | None,
        Header(description="This worker's name; without it, one derived from token and host"),
    ] = None,
) -> WorkerIdentity:
    """Answered from the cache, in the event loop, for a known worker (nearly every request);
    in a thread when the credentials must be read or a new worker id claimed."""
    cache = worker_identity_cache()
    if cache.is_fresh():
        credential = cache.directory().authenticate(x_worker_token)
        if credential is None:
            raise Unauthorized("missing or invalid X-Worker-Token")
        worker_id = _worker_id_of(request, credential, x_worker_id)
        if cache.has_confirmed(worker_id, credential.key):
            return WorkerIdentity(worker_id=worker_id, credential=credential)
    return await run_in_threadpool(_identify_worker, request, x_worker_token, x_worker_id)


def require_admin(x_admin_token: Annotated[str | None, Security(ADMIN_TOKEN)]) -> None:
    if not is_token_accepted(x_admin_token, get_settings().admin_tokens):
        raise Unauthorized("missing or invalid X-Admin-Token")


WorkerDep = Annotated[WorkerIdentity, Depends(require_worker)]
AdminDep = Annotated[None, Depends(require_admin)]
