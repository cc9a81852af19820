"""``/v1/parcels``: one parcel by any spelling of its identity, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from gateway_api.api_docs import PUBLIC_ERRORS, error_responses
from gateway_api.deps import PublicSessionDep
from gateway_api.public_access import (
    allow_query_parameters,
    quota_dependency,
    require_public_client,
)
from gateway_api.public_schemas import ParcelDetailOut
from gateway_api.schemas import Text
from services.ingest.history import parcel_history
from services.ingest.items import MAX_PARCEL_ID_CHARS
from services.public.parcels import find_parcel
from services.public.tiers import Feature

router = APIRouter(
    prefix="/v1/parcels",
    tags=["public"],
    dependencies=[Depends(require_public_client)],
    responses=PUBLIC_ERRORS,
)
PARCEL_PATH = "/{state}/{county}/{parcel_id}"
StateIn = Annotated[Text, Path(max_length=32)]
CountyIn = Annotated[Text, Path(max_length=128)]
ParcelIdIn = Annotated[Text, Path(max_length=MAX_PARCEL_ID_CHARS)]


class FieldChangeOut(BaseModel):
    field: str
    kind: Literal["added", "removed", "changed"]
    before: Any
    after: Any


class HistoryEntryOut(BaseModel):
    scraped_at: datetime
    is_first: bool = Field(description="The first known scrape: nothing to compare with")
    changes: list[FieldChangeOut] = Field(description="Since the previous scrape")
    data: dict[str, Any]


class ParcelHistoryOut(BaseModel):
    parcel: ParcelDetailOut
    entries: list[HistoryEntryOut] = Field(description="Newest first")


@router.get(
    PARCEL_PATH,
    dependencies=[allow_query_parameters(), quota_dependency(Feature.DETAIL)],
    summary="Get a parcel",
    responses=error_responses(403, 404),
)
def get_parcel(
    state: StateIn, county: CountyIn, parcel_id: ParcelIdIn, session: PublicSessionDep
) -> ParcelDetailOut:
    """The parcel; `01-08-13-0000-3634-1100` and `010813000036341100` find the same one."""
    return ParcelDetailOut.from_detail(find_parcel(session, state, county, parcel_id))


@router.get(
    f"{PARCEL_PATH}/history",
    dependencies=[allow_query_parameters("limit"), quota_dependency(Feature.HISTORY)],
    summary="Get a parcel's history",
    responses=error_responses(403, 404),
)
def get_parcel_history(
    state: StateIn,
    county: CountyIn,
    parcel_id: ParcelIdIn,
    session: PublicSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ParcelHistoryOut:
    """The parcel's scrapes, newest first, each with what changed since the one before."""
    parcel = find_parcel(session, state, county, parcel_id)
    entries = [
        HistoryEntryOut(
            scraped_at=entry.scraped_at,
            is_first=entry.is_first,
            changes=[
                FieldChangeOut(field=c.field, kind=c.kind, before=c.before, after=c.after)
                for c in entry.changes
            ],
            data=entry.data,
        )
        for entry in parcel_history(session, parcel.id, limit=limit)
    ]
    return ParcelHistoryOut(parcel=ParcelDetailOut.from_detail(parcel), entries=entries)
