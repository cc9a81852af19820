"""``/v1/search``: filtered, sorted, keyset-paginated parcel search, and the owner/address
substring searches kept from the old API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from gateway_api.api_docs import PUBLIC_ERRORS, error_responses
from gateway_api.deps import PublicSessionDep
from gateway_api.public_access import quota_dependency, require_public_client
from gateway_api.public_schemas import SearchPageOut
from gateway_api.schemas import Text
from services.public import search as parcel_search
from services.public.search_filters import make_filters, normalize_substring
from services.public.tiers import Feature
from settings import get_settings

router = APIRouter(
    prefix="/v1",
    tags=["public"],
    dependencies=[Depends(require_public_client)],
    responses=PUBLIC_ERRORS,
)

SortChoice = Literal[
    "-total_due", "total_due", "-assessed_value", "assessed_value",
    "-due_to_value", "due_to_value", "-updated_at", "updated_at",
]  # fmt: skip
Money = Annotated[Decimal | None, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Limit = Annotated[int, Field(ge=1, le=parcel_search.MAX_LIMIT)]
Cursor = Annotated[Text | None, Field(max_length=512, description="`next_cursor` of the last page")]
State = Annotated[Text | None, Field(max_length=32, description="Two-letter code or name")]
County = Annotated[Text | None, Field(max_length=64, description="Any spelling; needs state")]


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State = None
    county: County = None
    sort: SortChoice = Field("-updated_at", description="`-` first for descending")
    limit: Limit = parcel_search.DEFAULT_LIMIT
    cursor: Cursor = None


class SearchQuery(PageQuery):
    owner: Text | None = Field(None, max_length=200, description="Substring of the owner name")
    address: Text | None = Field(None, max_length=200, description="Substring of the address")
    total_due_min: Money = None
    total_due_max: Money = None
    assessed_value_min: Money = None
    assessed_value_max: Money = None
    property_type: Text | None = Field(None, max_length=100, description="Exact, any case")
    delinquent: bool | None = None
    updated_since: datetime | None = Field(None, description="ISO 8601; UTC if no offset")


class TextQuery(PageQuery):
    q: Text = Field(min_length=3, max_length=200, description="Substring, 3+ characters")


def _search(session: PublicSessionDep, query: PageQuery, **filters: object) -> SearchPageOut:
    page = parcel_search.search_parcels(
        session,
        make_filters(state=query.state, county=query.county, **filters),  # type: ignore[arg-type]
        sort=parcel_search.SearchSort.parse(query.sort),
        limit=query.limit,
        cursor=query.cursor,
        timeout_ms=get_settings().public_search_timeout_ms,
    )
    return SearchPageOut.from_page(page)


@router.get(
    "/search",
    dependencies=[quota_dependency(Feature.SEARCH)],
    summary="Search parcels",
    responses=error_responses(403),
)
def search_parcels(
    query: Annotated[SearchQuery, Query()], session: PublicSessionDep
) -> SearchPageOut:
    """Search parcels by place, owner, address, amounts, type and delinquency; keyset pages."""
    return _search(
        session,
        query,
        owner=query.owner,
        address=query.address,
        total_due_min=query.total_due_min,
        total_due_max=query.total_due_max,
        assessed_value_min=query.assessed_value_min,
        assessed_value_max=query.assessed_value_max,
        property_type=query.property_type,
        is_delinquent=query.delinquent,
        updated_since=query.updated_since,
    )


@router.get(
    "/search/owner",
    dependencies=[quota_dependency(Feature.SEARCH)],
    summary="Search by owner name",
    responses=error_responses(403),
)
def search_by_owner(
    query: Annotated[TextQuery, Query()], session: PublicSessionDep
) -> SearchPageOut:
    """Parcels whose owner name contains `q` (any case), through the trigram index."""
    return _search(session, query, owner=normalize_substring("q", query.q))


@router.get(
    "/search/address",
    dependencies=[quota_dependency(Feature.SEARCH)],
    summary="Search by address",
    responses=error_responses(403),
)
def search_by_address(
    query: Annotated[TextQuery, Query()], session: PublicSessionDep
) -> SearchPageOut:
    """Parcels whose situs address contains `q` (any case), through the trigram index."""
    return _search(session, query, address=normalize_substring("q", query.q))
