"""Response shapes of the public ``/v1`` API. Only typed parcel fields (and ``data`` on the
detail) are ever returned: no hashes, platforms, task or worker ids."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from db.models import Parcel
from services.public.search import SearchHit, SearchPage


class ParcelOut(BaseModel):
    state: str
    county: str
    parcel_id: str = Field(description="The id as the county writes it")
    parcel_key: str = Field(description="The id without case or punctuation")
    owner_name: str | None
    situs_address: str | None
    city: str | None
    zip: str | None
    property_type: str | None
    assessed_value: Decimal | None
    market_value: Decimal | None
    land_value: Decimal | None
    improvement_value: Decimal | None
    total_due: Decimal | None
    due_to_value: Decimal | None = Field(description="total_due / assessed_value")
    tax_year: int | None
    is_delinquent: bool | None
    delinquent_amount: Decimal | None
    last_sale_date: date | None
    last_sale_price: Decimal | None
    scraped_at: datetime
    updated_at: datetime

    @classmethod
    def from_parcel(cls, parcel: Parcel, *, due_to_value: Decimal | None) -> ParcelOut:
        names = [name for name in ParcelOut.model_fields if name != "due_to_value"]
        return cls(**{name: getattr(parcel, name) for name in names}, due_to_value=due_to_value)

    @classmethod
    def from_hit(cls, hit: SearchHit) -> ParcelOut:
        return cls.from_parcel(hit.parcel, due_to_value=hit.due_to_value)


class ParcelDetailOut(ParcelOut):
    data: dict[str, Any] = Field(description="The fields as scraped, kept as sent")

    @classmethod
    def from_detail(cls, parcel: Parcel) -> ParcelDetailOut:
        ratio = None
        if parcel.total_due is not None and parcel.assessed_value:
            ratio = parcel.total_due / parcel.assessed_value
        base = ParcelOut.from_parcel(parcel, due_to_value=ratio)
        return cls(**base.model_dump(), data=parcel.data)


class SearchPageOut(BaseModel):
    items: list[ParcelOut]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last")
    sort: str
    limit: int

    @classmethod
    def from_page(cls, page: SearchPage) -> SearchPageOut:
        return cls(
            items=[ParcelOut.from_hit(hit) for hit in page.items],
            next_cursor=page.next_cursor,
            sort=page.sort.text,
            limit=page.limit,
        )
