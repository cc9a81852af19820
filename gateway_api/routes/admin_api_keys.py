"""``/admin/api-keys``: create, list, rotate, re-tier and revoke public API keys.

The key itself appears only in the answers to create and rotate; it is stored hashed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from db.models import ApiKey
from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import BigId, Text
from services.public import api_keys

router = APIRouter(prefix="/admin/api-keys", tags=["admin"], responses=ADMIN_ERRORS)
KeyId = Annotated[BigId, Path()]


class ApiKeyOut(BaseModel):
    id: int
    prefix: str = Field(description="Not secret: names the key in listings")
    tier: str
    owner: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def from_record(cls, record: ApiKey) -> ApiKeyOut:
        return cls.model_validate(record, from_attributes=True)


class IssuedKeyOut(ApiKeyOut):
    key: str = Field(description="Shown once; only its hash is stored")


class ApiKeyListOut(BaseModel):
    keys: list[ApiKeyOut]


class CreateApiKeyIn(BaseModel):
    tier: Text = Field(min_length=1, max_length=32)
    owner: Text = Field(min_length=1, max_length=200, description="Who the key is for")


class UpdateApiKeyIn(BaseModel):
    tier: Text = Field(min_length=1, max_length=32)


def _issued(issued: api_keys.IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(**ApiKeyOut.from_record(issued.record).model_dump(), key=issued.key)


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    responses=error_responses(413, 422),
)
def create_api_key(body: CreateApiKeyIn, session: SessionDep, _: AdminDep) -> IssuedKeyOut:
    """Create a key with a tier and an owner label; the answer is the only time it is shown."""
    return _issued(api_keys.create_api_key(session, tier=body.tier, owner=body.owner))


@router.get(
    "",
    summary="List API keys",
    responses=error_responses(422),
)
def list_api_keys(
    session: SessionDep,
    _: AdminDep,
    include_revoked: Annotated[bool, Query()] = False,
) -> ApiKeyListOut:
    """Keys by id (prefixes, never the keys); revoked ones only when asked."""
    records = api_keys.list_api_keys(session, include_revoked=include_revoked)
    return ApiKeyListOut(keys=[ApiKeyOut.from_record(record) for record in records])


@router.post(
    "/{key_id}/rotate",
    summary="Rotate an API key",
    responses=error_responses(404, 413, 422),
)
def rotate_api_key(key_id: KeyId, session: SessionDep, _: AdminDep) -> IssuedKeyOut:
    """A new key for the same record (tier, owner, usage); the old key stops working now."""
    return _issued(api_keys.rotate_api_key(session, key_id))


@router.patch(
    "/{key_id}",
    summary="Change an API key's tier",
    responses=error_responses(404, 413, 422),
)
def update_api_key(
    key_id: KeyId, body: UpdateApiKeyIn, session: SessionDep, _: AdminDep
) -> ApiKeyOut:
    """Move a key to another tier."""
    return ApiKeyOut.from_record(api_keys.set_api_key_tier(session, key_id, tier=body.tier))


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key",
    responses=error_responses(404, 413, 422),
)
def revoke_api_key(key_id: KeyId, session: SessionDep, _: AdminDep) -> ApiKeyOut:
    """Revoke a key: it is refused (401) from the next request on. Idempotent."""
    return ApiKeyOut.from_record(api_keys.revoke_api_key(session, key_id))
