"""``/admin/platforms``: the scraping platforms, their state and their retry policy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from db.models import Platform
from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from services.dispatch import platforms as platform_service
from settings import get_settings

router = APIRouter(prefix="/admin/platforms", tags=["admin"], responses=ADMIN_ERRORS)

PlatformName = Annotated[str, Path(max_length=64, description="e.g. qpublic")]
MaxRetries = Annotated[
    int | None,
    Field(
        ge=0,
        le=platform_service.MAX_RETRIES_LIMIT,
        description="Retries before the dead-letter queue, for tasks enqueued from now on; "
        "null: the gateway default",
    ),
]
BackoffBase = Annotated[
    int | None,
    Field(
        ge=0,
        le=platform_service.MAX_BACKOFF_BASE_S,
        description="Retry n waits base · 2^(n-1) seconds; null: the gateway default",
    ),
]
Description = Annotated[str, Field(max_length=platform_service.MAX_DESCRIPTION_CHARS)]


class RetryPolicyOut(BaseModel):
    max_retries: int = Field(description="In effect (the platform's or the default)")
    retry_backoff_base_s: int = Field(description="In effect (the platform's or the default)")


class PlatformOut(BaseModel):
    name: str
    description: str
    is_enabled: bool = Field(description="Disabled: leasing skips it, enqueue refuses it")
    max_retries: int | None = Field(description="null: the gateway default applies")
    retry_backoff_base_s: int | None = Field(description="null: the gateway default applies")
    retry_policy: RetryPolicyOut
    created_at: datetime

    @classmethod
    def from_platform(cls, platform: Platform) -> PlatformOut:
        settings = get_settings()
        policy = RetryPolicyOut(
            max_retries=(
                settings.max_retries if platform.max_retries is None else platform.max_retries
            ),
            retry_backoff_base_s=(
                settings.retry_backoff_base_s
                if platform.retry_backoff_base_s is None
                else platform.retry_backoff_base_s
            ),
        )
        return cls(
            name=platform.name,
            description=platform.description,
            is_enabled=platform.is_enabled,
            max_retries=platform.max_retries,
            retry_backoff_base_s=platform.retry_backoff_base_s,
            retry_policy=policy,
            created_at=platform.created_at,
        )


class PlatformListOut(BaseModel):
    platforms: list[PlatformOut]


class CreatePlatformIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="a-z, 0-9 and _")
    description: Description = ""
    is_enabled: bool = True
    max_retries: MaxRetries = None
    retry_backoff_base_s: BackoffBase = None


class UpdatePlatformIn(BaseModel):
    """Only the fields sent change; null retry fields go back to the gateway default."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    is_enabled: bool | None = None
    max_retries: MaxRetries = None
    retry_backoff_base_s: BackoffBase = None

    def to_changes(self) -> platform_service.PlatformChanges:
        sent = self.model_dump(exclude_unset=True)
        for flag in ("description", "is_enabled"):
            if flag in sent and sent[flag] is None:
                del sent[flag]  # null here means nothing to change
        return platform_service.PlatformChanges(**sent)


@router.get(
    "",
    summary="List platforms",
)
def list_platforms(_: AdminDep, session: SessionDep) -> PlatformListOut:
    """Every platform, enabled or not, with its retry policy."""
    rows = platform_service.list_platforms(session)
    return PlatformListOut(platforms=[PlatformOut.from_platform(p) for p in rows])


@router.post(
    "",
    status_code=201,
    summary="Create a platform",
    responses=error_responses(409, 413, 422),
)
def create_platform(body: CreatePlatformIn, _: AdminDep, session: SessionDep) -> PlatformOut:
    """Add a platform; its scrape queues exist from its first task on. 409 if it exists."""
    platform = platform_service.add_platform(
        session,
        body.name,
        description=body.description,
        is_enabled=body.is_enabled,
        max_retries=body.max_retries,
        retry_backoff_base_s=body.retry_backoff_base_s,
    )
    return PlatformOut.from_platform(platform)


@router.get(
    "/{name}",
    summary="Get a platform",
    responses=error_responses(404, 422),
)
def get_platform(name: PlatformName, _: AdminDep, session: SessionDep) -> PlatformOut:
    """One platform."""
    return PlatformOut.from_platform(platform_service.get_platform(session, name))


@router.patch(
    "/{name}",
    summary="Update a platform",
    responses=error_responses(404, 413, 422),
)
def update_platform(
    name: PlatformName, body: UpdatePlatformIn, _: AdminDep, session: SessionDep
) -> PlatformOut:
    """Enable or disable a platform, change its description or its retry policy."""
    platform = platform_service.update_platform(session, name, body.to_changes())
    return PlatformOut.from_platform(platform)
