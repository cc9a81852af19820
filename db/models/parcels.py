"""Parcels (identified by state, county and normalised parcel key) and their scrape snapshots."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column

Money = Numeric(14, 2)


def identity_text_sql(alias: str | None = None) -> str:
    """``state/county/parcel_key`` as one text: the expression of ``ix_parcels_identity_text``.

    Queries must spell it this way (any table alias) for the planner to use that index.
    """
    prefix = f"{alias}." if alias else ""
    return f"(({prefix}state)::text || '/' || ({prefix}county)::text || '/' || {prefix}parcel_key)"


class Parcel(Base):
    __tablename__ = "parcels"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    state: Mapped[str] = mapped_column(String(2), nullable=False)
    county: Mapped[str] = mapped_column(String(64), nullable=False)
    parcel_key: Mapped[str] = mapped_column(Text, nullable=False)
    parcel_id: Mapped[str] = mapped_column(Text, nullable=False)  # as scraped, for display
    platform: Mapped[str] = mapped_column(String(64), nullable=False)
    scraped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    data_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    raw_html_hash: Mapped[str | None] = mapped_column(String(64))

    owner_name: Mapped[str | None] = mapped_column(Text)
    situs_address: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    zip: Mapped[str | None] = mapped_column(String(10))
    property_type: Mapped[str | None] = mapped_column(Text)
    assessed_value: Mapped[Decimal | None] = mapped_column(Money)
    market_value: Mapped[Decimal | None] = mapped_column(Money)
    land_value: Mapped[Decimal | None] = mapped_column(Money)
    improvement_value: Mapped[Decimal | None] = mapped_column(Money)
    total_due: Mapped[Decimal | None] = mapped_column(Money)
    tax_year: Mapped[int | None] = mapped_column(Integer)
    is_delinquent: Mapped[bool | None] = mapped_column(Boolean)
    delinquent_amount: Mapped[Decimal | None] = mapped_column(Money)
    last_sale_date: Mapped[date | None] = mapped_column(Date)
    last_sale_price: Mapped[Decimal | None] = mapped_column(Money)
    living_area_sqft: Mapped[int | None] = mapped_column(Integer)
    acreage: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    # Substring search keys of owner_name and situs_address (services.text_trigrams), written
    # by the ingest with the columns they index.
    owner_trigrams: Mapped[list[str] | None] = mapped_column(ARRAY(Text), deferred=True)
    address_trigrams: Mapped[list[str] | None] = mapped_column(ARRAY(Text), deferred=True)

    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        UniqueConstraint("state", "county", "parcel_key", name="uq_parcels_identity"),
        # Not unique: a second unique index on the identity would raise on concurrent first
        # inserts that ON CONFLICT ON CONSTRAINT uq_parcels_identity does not arbitrate (0006).
        Index("ix_parcels_identity_text", text(identity_text_sql())),
        # /v1/properties/{parcel_id} names no state or county (0008).
        Index("ix_parcels_parcel_key", "parcel_key"),
    )


class ParcelSnapshot(Base):
    """Every accepted scrape of a parcel, so its history (what changed) can be shown."""

    __tablename__ = "parcel_snapshots"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), nullable=False
    )
    platform: Mapped[str] = mapped_column(String(64), nullable=False)
    scraped_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    data_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    raw_html_hash: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        # Redelivery of the same scrape adds no second snapshot.
        UniqueConstraint("parcel_id", "platform", "scraped_at", name="uq_parcel_snapshots_scrape"),
    )
