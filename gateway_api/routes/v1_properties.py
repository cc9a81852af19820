"""``/v1/properties``: the original public API's paths, aliases of parcel detail and search.

Clients of the original name a parcel by its id alone (``/v1/properties/{parcel_id}``);
``state`` and ``county`` query parameters narrow it, and an id found in several counties is a
409 listing them. ``/v1/properties`` is ``/v1/search`` under the original's path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from gateway_api.api_docs import PUBLIC_ERRORS, error_responses
from gateway_api.deps import SessionDep
from gateway_api.public_access import (
    allow_query_parameters,
    quota_dependency,
    require_public_client,
)
from gateway_api.public_schemas import ParcelDetailOut, SearchPageOut
from gateway_api.routes import v1_search
from services.public.parcels import find_parcel_by_id
from services.public.tiers import Feature

router = APIRouter(
    prefix="/v1",
    tags=["public"],
    dependencies=[Depends(require_public_client)],
    responses=PUBLIC_ERRORS,
)


class PropertyOut(ParcelDetailOut):
    owner: str | None = Field(description="The original API's name for owner_name")


@router.get(
    "/properties/{parcel_id}",
    dependencies=[allow_query_parameters("state", "county"), quota_dependency(Feature.DETAIL)],
    summary="Get a property (the original API)",
    responses=error_responses(403, 404, 409),
)
def get_property(
    parcel_id: str,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=32, description="Code or name")] = None,
    county: Annotated[str | None, Query(max_length=64, description="Any spelling")] = None,
) -> PropertyOut:
    """A parcel by its id (any spelling); 409 lists the candidates when the id is ambiguous."""
    parcel = find_parcel_by_id(session, parcel_id, state=state, county=county)
    detail = ParcelDetailOut.from_detail(parcel)
    return PropertyOut(**detail.model_dump(), owner=detail.owner_name)


@router.get(
    "/properties",
    dependencies=[quota_dependency(Feature.SEARCH)],
    summary="Search properties (the original API)",
    responses=error_responses(403),
)
def search_properties(
    query: Annotated[v1_search.SearchQuery, Query()], session: SessionDep
) -> SearchPageOut:
    """The same search as `GET /v1/search`, under the original API's path."""
    return v1_search.search_parcels(query, session)
