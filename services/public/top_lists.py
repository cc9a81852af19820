"""Named top lists: each strategy is a fixed sort plus fixed filters over the search."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from services.errors import NotFound
from services.public.search import SearchPage, SearchSort, SortKey, search_parcels
from services.public.search_filters import SearchFilters


@dataclass(frozen=True)
class TopListStrategy:
    name: str
    description: str
    sort: SearchSort
    fixed: dict[str, object]


STRATEGIES = {
    strategy.name: strategy
    for strategy in (
        TopListStrategy(
            "highest-due",
            "Largest total amount due first.",
            SearchSort(SortKey.TOTAL_DUE, is_descending=True),
            {"total_due_min": Decimal("0.01")},
        ),
        TopListStrategy(
            "due-to-value",
            "Largest total due relative to assessed value first (parcels with a value).",
            SearchSort(SortKey.DUE_TO_VALUE, is_descending=True),
            {"total_due_min": Decimal("0.01"), "assessed_value_min": Decimal("0.01")},
        ),
        TopListStrategy(
            "recently-delinquent",
            "Delinquent parcels, the most recently changed first (ingest rewrites a parcel "
            "only when something changed, so a parcel that just became delinquent leads).",
            SearchSort(SortKey.UPDATED_AT, is_descending=True),
            {"is_delinquent": True},
        ),
    )
}


def get_strategy(name: str) -> TopListStrategy:
    strategy = STRATEGIES.get(name)
    if strategy is None:
        valid = sorted(STRATEGIES)
        raise NotFound(f"unknown top list {name!r}; valid: {valid}", details={"valid": valid})
    return strategy


def top_list(
    session: Session,
    name: str,
    *,
    scope: SearchFilters,
    limit: int,
    cursor: str | None = None,
    timeout_ms: int | None = None,
) -> SearchPage:
    """One page of the ``name`` list within ``scope`` (its state/county filters are used)."""
    strategy = get_strategy(name)
    filters = dataclasses.replace(
        SearchFilters(state=scope.state, county=scope.county),
        **strategy.fixed,  # type: ignore[arg-type]
    )
    return search_parcels(
        session,
        filters,
        sort=strategy.sort,
        limit=limit,
        cursor=cursor,
        include_nulls=False,
        timeout_ms=timeout_ms,
    )
