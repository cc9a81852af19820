"""``/admin/worker-credentials``: per-worker tokens bound to the worker ids they may use.

The token appears only in the answer to create; it is stored hashed. Other API processes
see a new or revoked credential within ``DIRECTORY_REFRESH_S`` seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from db.models import WorkerCredential
from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep, worker_identity_cache
from gateway_api.deps import SessionDep
from gateway_api.schemas import BigId, Text
from services.dispatch import worker_credentials

router = APIRouter(prefix="/admin/worker-credentials", tags=["admin"], responses=ADMIN_ERRORS)


class WorkerCredentialOut(BaseModel):
    id: int
    prefix: str = Field(description="Not secret: names the token in listings")
    worker_ids: str = Field(description="An exact worker id, or a prefix ending in '*'")
    owner: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, record: WorkerCredential) -> WorkerCredentialOut:
        return cls.model_validate(record, from_attributes=True)


class IssuedWorkerTokenOut(WorkerCredentialOut):
    token: str = Field(description="Shown once; send it as X-Worker-Token")


class WorkerCredentialListOut(BaseModel):
    credentials: list[WorkerCredentialOut]


class CreateWorkerCredentialIn(BaseModel):
    worker_ids: Annotated[Text, Field(min_length=1, max_length=129)] = Field(
        description="The ids the token may use: 'scraper-7', or 'fleet-a-*' for a prefix"
    )
    owner: Annotated[Text, Field(min_length=1, max_length=200)]


@router.post(
    "",
    status_code=201,
    summary="Create a worker credential",
    responses=error_responses(413, 422),
)
def create_worker_credential(
    body: CreateWorkerCredentialIn, session: SessionDep, _: AdminDep
) -> IssuedWorkerTokenOut:
    """Create a worker token bound to ``worker_ids``; the answer is the only time it is shown."""
    issued = worker_credentials.create_worker_credential(
        session, worker_ids=body.worker_ids, owner=body.owner
    )
    session.commit()  # before this process's directory is reloaded from the database
    worker_identity_cache().clear()
    out = WorkerCredentialOut.from_record(issued.record)
    return IssuedWorkerTokenOut(**out.model_dump(), token=issued.token)


@router.get(
    "",
    summary="List worker credentials",
    responses=error_responses(422),
)
def list_worker_credentials(
    session: SessionDep, _: AdminDep, include_revoked: Annotated[bool, Query()] = False
) -> WorkerCredentialListOut:
    """Credentials by id (prefixes, never the tokens); revoked ones only when asked."""
    records = worker_credentials.list_worker_credentials(session, include_revoked=include_revoked)
    return WorkerCredentialListOut(
        credentials=[WorkerCredentialOut.from_record(record) for record in records]
    )


@router.post(
    "/{credential_id}/revoke",
    summary="Revoke a worker credential",
    responses=error_responses(404, 413, 422),
)
def revoke_worker_credential(
    credential_id: Annotated[BigId, Path()], session: SessionDep, _: AdminDep
) -> WorkerCredentialOut:
    """Revoke a worker token (401 from then on); its worker ids become free. Idempotent."""
    record = worker_credentials.revoke_worker_credential(session, credential_id)
    session.commit()
    worker_identity_cache().clear()
    return WorkerCredentialOut.from_record(record)
