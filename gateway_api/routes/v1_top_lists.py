"""``/v1/top-lists``: named rankings (highest due, due to value, recently delinquent)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict

from gateway_api.api_docs import PUBLIC_ERRORS, error_responses
from gateway_api.deps import PublicSessionDep
from gateway_api.public_access import quota_dependency, require_public_client
from gateway_api.public_schemas import SearchPageOut
from gateway_api.routes.v1_search import County, Cursor, Limit, State
from gateway_api.schemas import Text
from services.public import search as parcel_search
from services.public.search_filters import make_filters
from services.public.tiers import Feature
from services.public.top_lists import STRATEGIES, get_strategy, top_list
from settings import get_settings

router = APIRouter(
    prefix="/v1/top-lists",
    tags=["public"],
    dependencies=[Depends(require_public_client)],
    responses=PUBLIC_ERRORS,
)


class TopListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State = None
    county: County = None
    limit: Limit = parcel_search.DEFAULT_LIMIT
    cursor: Cursor = None


class StrategyOut(BaseModel):
    name: str
    description: str
    sort: str


class StrategiesOut(BaseModel):
    strategies: list[StrategyOut]


class TopListOut(SearchPageOut):
    strategy: str


@router.get(
    "",
    summary="List top-list strategies",
)
def list_top_lists() -> StrategiesOut:
    """The available top-list strategies."""
    return StrategiesOut(
        strategies=[
            StrategyOut(name=s.name, description=s.description, sort=s.sort.text)
            for s in STRATEGIES.values()
        ]
    )


Strategy = Annotated[Text, Path(max_length=64)]


def _known_strategy(strategy: Strategy) -> str:
    # Checked before the quota is touched: an unknown strategy is a 404 that costs nothing.
    return get_strategy(strategy).name


@router.get(
    "/{strategy}",
    dependencies=[Depends(_known_strategy), quota_dependency(Feature.TOP_LISTS)],
    summary="Get a top list",
    responses=error_responses(403, 404, notes={404: "Unknown strategy or place"}),
)
def get_top_list(
    strategy: Strategy, query: Annotated[TopListQuery, Query()], session: PublicSessionDep
) -> TopListOut:
    """One page of a top list, optionally within a state or county."""
    page = top_list(
        session,
        strategy,
        scope=make_filters(state=query.state, county=query.county),
        limit=query.limit,
        cursor=query.cursor,
        timeout_ms=get_settings().public_search_timeout_ms,
    )
    return TopListOut(**SearchPageOut.from_page(page).model_dump(), strategy=strategy)
