"""The scraper fleet's own ``data`` keys (qpublic, beacon, tyler, bid4assets, the spec'd
standard record) fill the typed parcel columns, and ``highest-due`` lists the parcels.

Key sets are those of ``shared/reference/scraper-fleet-output.md``; values are as county
sites show them (qpublic's are not stripped), and the typed-record form carries JSON numbers
and booleans instead of strings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Parcel
from services.ingest import ingest_result_items
from services.ingest.fields import extract_typed_values

SCRAPED_AT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

QPUBLIC_DIXIE = {  # exactly the 7 keys of qpublic_parse_single_html_task, unstripped
    "parcel_id": "35-08-13-0000-3900-0200",
    "owner": "\n            SMITH JOHN & MARY\n        ",
    "site_address": "https://www.google.com/maps/search/?api=1&query=29.58,-83.15",  # an href
    "legal_description": "\n  COM AT NE COR OF SW1/4 RUN W 210 FT ORB 123 P 456\n",
    "property_tax_account": " 1806901892 ",
    "total_due_amount": "\n    $1,234.56\n  ",
    "last_year_due_amount": " $1,180.22 ",
}
BEACON_PINELLAS = {
    "parcel_id": "16-31-16-00000-140-0100",
    "owner": "GARCIA MARIA L",
    "site_address": "4501 34TH ST N",
    "legal_description": "W 100 FT OF E 350 FT OF N 1/2 OF NW 1/4",
    "property_tax_account": "R0148273",
    "mailing_address": "PO BOX 1123, ST PETERSBURG FL 33731",
    "property_type": "Single Family Residential",
    "building_sqft": "1,850",
    "year_built": "1978",
    "bedrooms": "3",
    "bathrooms": "2",
    "lot_size": "0.25 AC",
    "zoning": "R-3",
    "total_due_amount": "$2,345.67",
    "last_year_due_amount": "$2,210.00",
    "land_value": "$45,000",
    "improvement_value": "$120,500",
    "market_value": "$165,500",
    "assessed_value": "$150,000",
    "last_sale_date": "03/15/2019",
    "last_sale_price": "$155,000",
    "deed_book": "20456",
    "deed_page": "1187",
    "exemptions": "HOMESTEAD, SENIOR",
    "image_urls": ["https://www.pcpao.org/photos/1631160000014001001.jpg"],
    "map_url": "https://www.pcpao.org/map?p=163116000001400100",
}
TYLER_HARRIS = {  # tyler sends no amount due: tax_amount is the year's levy
    "parcel_id": "0021190000005",
    "owner": "JOHNSON ROBERT",
    "site_address": "1234 MAIN ST HOUSTON TX 77002",
    "mailing_address": "1234 MAIN ST HOUSTON TX 77002-1234",
    "property_type": "Residential",
    "land_value": "$60,000",
    "improvement_value": "$190,000",
    "assessed_value": "$250,000",
    "legal_description": "LT 5 BLK 12 MAGNOLIA PARK",
    "building_sqft": "2,140",
    "year_built": "1995",
    "bedrooms": "4",
    "bathrooms": "2.5",
    "lot_size": "7,500 SF",
    "tax_year": "2025",
    "tax_amount": "$5,412.30",
    "tax_status": "Delinquent",
    "has_delinquency": True,
    "delinquent_amount": "$5,412.30",
    "exemptions": "",
    "last_sale_date": "2011-06-30",
    "last_sale_price": "$210,000",
}
BID4ASSETS_MARICOPA = {
    "property_title": "APN 123-45-678 - Phoenix Single Family Home",
    "property_address": "2207 W ROMA AVE, PHOENIX, AZ 85015",
    "parcel_id": "123-45-678",
    "current_bid": "$1,500.00",
    "opening_bid": "$1,000.00",
    "number_of_bids": "3",
    "auction_end_time": "2026-05-12T17:00:00Z",
    "property_type": "Residential",
    "tax_amount_due": "$3,210.45",
    "tax_year": "2023",
    "assessed_value": "$85,000",
    "bedrooms": "3",
    "bathrooms": "1",
    "building_sqft": "1,200 sq ft",
    "lot_size": "0.18 acres",
    "year_built": "1962",
    "zoning": "R1-6",
    "legal_description": "LOT 14 ROMA PARK UNIT 2",
    "owner": "ESTATE OF WILLIAMS HENRY",
    "redemption_period": "None",
    "auction_type": "tax_deed",
    "image_urls": ["https://img.bid4assets.com/1.jpg", "https://img.bid4assets.com/2.jpg"],
    "document_urls": ["https://www.bid4assets.com/docs/deed.pdf"],
    "jurisdiction": "Maricopa County, AZ",
    "notes": "Sold as is.",
    "scraped_at": "2026-04-01T10:00:00",
    "source": "bid4assets",
    "parse_error": None,
    "property_url": "https://www.bid4assets.com/auction/index/1234567",
}
STANDARD_RECORD_TYPED = {  # the PropertyData form: JSON numbers, booleans and lists
    "parcel_id": "R12074-000",
    "property_tax_account": "12074-000",
    "source_platform": "qpublic",
    "source_url": "https://qpublic.schneidercorp.com/Application.aspx?KeyValue=R12074-000",
    "property_address": "345 SW DEPUTY J DAVIS LN",
    "city": "LAKE CITY",
    "county": "columbia",
    "state": "FL",
    "zip_code": "32024",
    "latitude": 30.1897,
    "longitude": -82.6393,
    "property_type": "VACANT",
    "building_sqft": 0,
    "land_acres": 4.75,
    "year_built": None,
    "assessed_value": 38000.0,
    "market_value": 41500,
    "land_value": 41500.0,
    "building_value": 0.0,
    "tax_amount": 702.55,
    "tax_year": 2024,
    "interest_rate": 18.0,
    "penalty_amount": 35.13,
    "total_due_amount": 842.17,
    "owner_name": "DAVIS TRUST",
    "owner_address": "PO BOX 77",
    "owner_city": "LAKE CITY",
    "owner_state": "FL",
    "owner_zip": "32056",
    "has_delinquency": False,
    "status": "active",
    "is_available": True,
    "images": [],
    "documents": [{"name": "tax bill", "url": "https://example.invalid/bill.pdf"}],
    "scraped_at": "2026-04-01T10:00:00",
}


def fleet_item(platform: str, state: str, county: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": None,
        "parcel_id": data["parcel_id"].strip(),
        "platform": platform,
        "state": state,
        "county": county,
        "data": data,
        "scraped_at": SCRAPED_AT,
        "parse_duration_ms": 40,
    }


FLEET_ITEMS = [
    fleet_item("qpublic", "FL", "Dixie", QPUBLIC_DIXIE),
    fleet_item("beacon", "FL", "Pinellas", BEACON_PINELLAS),
    fleet_item("tyler", "TX", "Harris", TYLER_HARRIS),
    fleet_item("bid4assets", "AZ", "Maricopa", BID4ASSETS_MARICOPA),
    fleet_item("qpublic", "FL", "Columbia", STANDARD_RECORD_TYPED),
]


@pytest.fixture
def fleet_parcels(db_session: Session) -> dict[str, Parcel]:
    outcome = ingest_result_items(db_session, FLEET_ITEMS)
    db_session.commit()
    assert (outcome.inserted, outcome.rejected) == (len(FLEET_ITEMS), 0), outcome.errors
    assert not outcome.unparsed, outcome.unparsed
    rows = db_session.execute(select(Parcel)).scalars()
    return {row.platform + ":" + row.county: row for row in rows}


def test_qpublic_record_fills_total_due_and_owner(fleet_parcels: dict[str, Parcel]) -> None:
    parcel = fleet_parcels["qpublic:dixie"]
    assert parcel.total_due == Decimal("1234.56")
    assert parcel.owner_name == "SMITH JOHN & MARY"
    assert parcel.data["last_year_due_amount"] == " $1,180.22 "  # kept raw, no column


def test_a_link_in_site_address_is_not_taken_for_the_address(
    fleet_parcels: dict[str, Parcel],
) -> None:
    assert fleet_parcels["qpublic:dixie"].situs_address is None


def test_beacon_record_fills_every_column_it_has(fleet_parcels: dict[str, Parcel]) -> None:
    parcel = fleet_parcels["beacon:pinellas"]
    assert (parcel.total_due, parcel.assessed_value, parcel.market_value) == (
        Decimal("2345.67"), Decimal("150000.00"), Decimal("165500.00"),
    )  # fmt: skip
    assert (parcel.land_value, parcel.improvement_value) == (Decimal("45000"), Decimal("120500"))
    assert (parcel.last_sale_date, parcel.last_sale_price) == (date(2019, 3, 15), Decimal(155000))
    assert parcel.living_area_sqft == 1850
    assert parcel.property_type == "Single Family Residential"
    assert parcel.owner_name == "GARCIA MARIA L"
    assert parcel.data["image_urls"] == BEACON_PINELLAS["image_urls"]


def test_tyler_boolean_delinquency_and_amount(fleet_parcels: dict[str, Parcel]) -> None:
    parcel = fleet_parcels["tyler:harris"]
    assert parcel.is_delinquent is True
    assert parcel.delinquent_amount == Decimal("5412.30")
    assert (parcel.tax_year, parcel.assessed_value) == (2025, Decimal("250000"))
    assert parcel.total_due is None  # tyler sends no amount due; tax_amount is the levy


def test_bid4assets_record_maps_its_own_names(fleet_parcels: dict[str, Parcel]) -> None:
    parcel = fleet_parcels["bid4assets:maricopa"]
    assert parcel.total_due == Decimal("3210.45")
    assert parcel.situs_address == "2207 W ROMA AVE, PHOENIX, AZ 85015"
    assert parcel.owner_name == "ESTATE OF WILLIAMS HENRY"
    assert (parcel.tax_year, parcel.living_area_sqft) == (2023, 1200)
    assert parcel.data["document_urls"] == BID4ASSETS_MARICOPA["document_urls"]


def test_json_numbers_and_booleans_fill_columns(fleet_parcels: dict[str, Parcel]) -> None:
    parcel = fleet_parcels["qpublic:columbia"]
    assert parcel.total_due == Decimal("842.17")
    assert (parcel.assessed_value, parcel.market_value) == (Decimal(38000), Decimal(41500))
    assert (parcel.land_value, parcel.improvement_value) == (Decimal(41500), Decimal(0))
    assert (parcel.tax_year, parcel.living_area_sqft) == (2024, 0)
    assert parcel.acreage == Decimal("4.7500")
    assert parcel.is_delinquent is False
    assert (parcel.city, parcel.zip) == ("LAKE CITY", "32024")
    assert parcel.situs_address == "345 SW DEPUTY J DAVIS LN"
    assert parcel.owner_name == "DAVIS TRUST"
    assert parcel.data["documents"][0]["name"] == "tax bill"


@pytest.mark.parametrize(
    ("key", "value", "column", "expected"),
    [
        ("total_due_amount", 1234, "total_due", Decimal("1234.00")),
        ("total_due_amount", "$1,234.56", "total_due", Decimal("1234.56")),
        ("tax_amount_due", 99.5, "total_due", Decimal("99.50")),
        ("has_delinquency", True, "is_delinquent", True),
        ("has_delinquency", False, "is_delinquent", False),
        ("has_delinquency", "True", "is_delinquent", True),
        ("property_address", "1 MAIN ST", "situs_address", "1 MAIN ST"),
        ("land_acres", 0.52, "acreage", Decimal("0.5200")),
        ("tax_year", 2025, "tax_year", 2025),
        ("building_sqft", 1850, "living_area_sqft", 1850),
    ],
)
def test_each_fleet_key_maps_to_its_column(
    key: str, value: object, column: str, expected: object
) -> None:
    typed = extract_typed_values({key: value})
    assert typed.columns[column] == expected
    assert typed.unparsed == []


@pytest.mark.parametrize(
    "key",
    ["image_urls", "document_urls", "images", "documents", "lot_size", "tax_amount",
     "last_year_due_amount", "tax_status", "mailing_address", "owner_address"],
)  # fmt: skip
@pytest.mark.parametrize("value", ["$1,234.00", ["https://a.invalid/1.jpg"], {"url": "x"}])
def test_keys_without_a_typed_column_stay_in_data_only(key: str, value: object) -> None:
    typed = extract_typed_values({key: value})
    assert all(column is None for column in typed.columns.values())


@pytest.mark.usefixtures("fleet_parcels")
def test_highest_due_lists_fleet_parcels(api_client: TestClient) -> None:
    response = api_client.get("/v1/top-lists/highest-due")
    assert response.status_code == 200, response.text
    ranked = [(item["parcel_id"], item["total_due"]) for item in response.json()["items"]]
    assert [parcel_id for parcel_id, _ in ranked] == [
        "123-45-678", "16-31-16-00000-140-0100", "35-08-13-0000-3900-0200", "R12074-000",
    ]  # fmt: skip
    filtered = api_client.get("/v1/search", params={"total_due_min": "1000", "sort": "-total_due"})
    assert filtered.status_code == 200, filtered.text
    assert len(filtered.json()["items"]) == 3
