"""``GET /v1/search``: every filter, every sort, keyset pages, and 422 for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.public import search as parcel_search
from tests.public_factories import ParcelSpec, add_parcels

ENTERPRISE_SPECS = [
    ParcelSpec(
        parcel_id="A-1", owner="SMITH JOHN", address="12 Oak St", total_due="$1,500.00",
        assessed_value="$100,000", property_type="Residential", delinquent="Y",
    ),
    ParcelSpec(
        parcel_id="A-2", owner="Smithers Holdings LLC", address="400 Main Street",
        total_due="$250.50", assessed_value="$1,000", property_type="Commercial", delinquent="N",
    ),
    ParcelSpec(
        parcel_id="A-3", owner="JONES MARY", address="7 OAK STREET", total_due="$9,000.00",
        assessed_value="$300,000", property_type="Residential", delinquent="Y",
    ),
    ParcelSpec(parcel_id="A-4", owner="GARCIA ANA", address="1 Pine Rd", total_due=None,
               assessed_value="$50,000", property_type="Vacant"),
    ParcelSpec(county="Levy", parcel_id="B-1", owner="SMITH ANNA", address="9 Oak Lane",
               total_due="$3,000", assessed_value="$0", property_type="residential",
               delinquent="Y"),
    ParcelSpec(state="AZ", county="Apache", parcel_id="C-1", owner="John  Smith",
               address="55 Desert Oak Way", total_due="$700", assessed_value="$7,000",
               property_type="Residential", delinquent="N"),
]  # fmt: skip


@pytest.fixture
def parcels(db_session: Session) -> dict[str, int]:
    rows = add_parcels(db_session, ENTERPRISE_SPECS)
    return {row.parcel_id: row.id for row in rows}


def search(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/v1/search", params={"limit": 100, **params})
    assert response.status_code == 200, response.text
    return [item["parcel_id"] for item in response.json()["items"]]


def all_pages(client: TestClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/search", params=page_params).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.fixture
def client(api_client: TestClient, db_session: Session) -> TestClient:
    from tests.public_factories import add_api_key

    api_client.headers["X-API-Key"] = add_api_key(db_session, "enterprise").key
    return api_client


@pytest.mark.usefixtures("parcels")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "FL"}, {"A-1", "A-2", "A-3", "A-4", "B-1"}),
        ({"state": "florida", "county": "LEVY County"}, {"B-1"}),
        ({"state": "az"}, {"C-1"}),
        ({"owner": "smith"}, {"A-1", "A-2", "B-1", "C-1"}),
        ({"owner": "JOHN SMITH"}, {"C-1"}),  # runs of spaces count as one
        ({"owner": "smith j"}, {"A-1"}),
        ({"address": "oak st"}, {"A-1", "A-3"}),
        ({"address": "Oak", "state": "FL", "county": "dixie"}, {"A-1", "A-3"}),
        ({"total_due_min": "1500"}, {"A-1", "A-3", "B-1"}),
        ({"total_due_max": "700"}, {"A-2", "C-1"}),
        ({"total_due_min": "700", "total_due_max": "3000"}, {"A-1", "B-1", "C-1"}),
        ({"assessed_value_min": "50000"}, {"A-1", "A-3", "A-4"}),
        ({"assessed_value_max": "1000"}, {"A-2", "B-1"}),
        ({"property_type": "RESIDENTIAL"}, {"A-1", "A-3", "B-1", "C-1"}),
        ({"delinquent": "true"}, {"A-1", "A-3", "B-1"}),
        ({"delinquent": "false"}, {"A-2", "C-1"}),
        ({"owner": "smith", "delinquent": "true", "state": "FL"}, {"A-1", "B-1"}),
    ],
)
def test_each_filter_selects_exactly_the_matching_parcels(
    client: TestClient, params: dict[str, str], expected: set[str]
) -> None:
    assert set(search(client, **params)) == expected


def test_updated_since_keeps_parcels_changed_after_the_moment(
    client: TestClient, db_session: Session, parcels: dict[str, int]
) -> None:
    db_session.execute(text("UPDATE parcels SET updated_at = now() - interval '2 days'"))
    db_session.execute(
        text("UPDATE parcels SET updated_at = now() WHERE id = :id"), {"id": parcels["A-3"]}
    )
    db_session.commit()
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert search(client, updated_since=since) == ["A-3"]


@pytest.mark.usefixtures("parcels")
@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-total_due", ["A-3", "B-1", "A-1", "C-1", "A-2", "A-4"]),
        ("total_due", ["A-2", "C-1", "A-1", "B-1", "A-3", "A-4"]),
        ("-assessed_value", ["A-3", "A-1", "A-4", "C-1", "A-2", "B-1"]),
        ("assessed_value", ["B-1", "A-2", "C-1", "A-4", "A-1", "A-3"]),
        # 0.2505, 0.1, 0.03, 0.015; no ratio (no due, or a zero value) comes last
        ("-due_to_value", ["A-2", "C-1", "A-3", "A-1", "B-1", "A-4"]),
        ("due_to_value", ["A-1", "A-3", "C-1", "A-2", "A-4", "B-1"]),
    ],
)
def test_each_sort_orders_values_and_puts_unknown_values_last(
    client: TestClient, sort: str, expected: list[str]
) -> None:
    assert search(client, sort=sort) == expected


def test_sort_by_updated_at_both_ways(
    client: TestClient, db_session: Session, parcels: dict[str, int]
) -> None:
    for position, parcel_id in enumerate(["A-2", "C-1", "A-1", "B-1", "A-4", "A-3"]):
        db_session.execute(
            text("UPDATE parcels SET updated_at = now() - make_interval(mins => :m) WHERE id = :i"),
            {"m": 100 - position, "i": parcels[parcel_id]},
        )
    db_session.commit()
    assert search(client, sort="updated_at") == ["A-2", "C-1", "A-1", "B-1", "A-4", "A-3"]
    assert search(client, sort="-updated_at") == ["A-3", "A-4", "B-1", "A-1", "C-1", "A-2"]
    assert search(client) == search(client, sort="-updated_at")  # the default


def test_items_carry_typed_fields_only(client: TestClient, parcels: dict[str, int]) -> None:
    item = client.get("/v1/search", params={"owner": "jones"}).json()["items"][0]
    assert item["parcel_id"] == "A-3" and item["parcel_key"] == "A3"
    assert Decimal(item["total_due"]) == Decimal("9000.00")
    assert Decimal(item["due_to_value"]) == Decimal("0.03")
    assert item["is_delinquent"] is True
    for internal in ("id", "data", "data_hash", "raw_html_hash", "platform", "task_id"):
        assert internal not in item


@pytest.mark.parametrize("sort", ["-total_due", "total_due", "-due_to_value", "updated_at"])
def test_pages_cover_every_row_once_in_order(
    client: TestClient, db_session: Session, sort: str
) -> None:
    specs = [
        ParcelSpec(
            parcel_id=f"P-{n}",
            total_due=None if n % 7 == 0 else f"{(n % 5) * 100}",  # ties and NULLs
            assessed_value=f"{1000 + (n % 3) * 500}",
        )
        for n in range(1, 48)
    ]
    add_parcels(db_session, specs)
    expected = search(client, sort=sort)
    paged = all_pages(client, {"sort": sort, "limit": 4})
    assert [item["parcel_id"] for item in paged] == expected
    assert len(expected) == 47


def change_rows_between_pages(db_session: Session, round_number: int) -> str:
    """New parcels arrive, some are rescraped (same due, new owner), one is deleted."""
    later = datetime.now(UTC) - timedelta(seconds=60 - round_number)
    arrivals = [
        ParcelSpec(parcel_id=f"NEW-{round_number}-{k}", total_due=f"{k}50") for k in range(3)
    ]
    rescrapes = [
        ParcelSpec(
            parcel_id=f"Q-{n}", total_due=f"{n % 9}00", owner=f"v{round_number}", scraped_at=later
        )
        for n in range(round_number, 60, 11)
    ]
    add_parcels(db_session, arrivals + rescrapes)
    deleted = f"Q-{59 - round_number}"
    db_session.execute(text("DELETE FROM parcels WHERE parcel_id = :p"), {"p": deleted})
    db_session.commit()
    return deleted


def test_pages_have_no_duplicates_or_gaps_while_rows_change(
    client: TestClient, db_session: Session
) -> None:
    add_parcels(
        db_session, [ParcelSpec(parcel_id=f"Q-{n}", total_due=f"{n % 9}00") for n in range(60)]
    )
    seen: list[str] = []
    deleted: set[str] = set()
    params: dict[str, Any] = {"sort": "-total_due", "limit": 7}
    while True:
        body = client.get("/v1/search", params=params).json()
        seen += [item["parcel_id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
        deleted.add(change_rows_between_pages(db_session, len(deleted) + 1))

    stable = {f"Q-{n}" for n in range(60)} - deleted
    assert len(deleted) >= 8
    assert len(seen) == len(set(seen)), "a parcel appeared twice"
    assert stable <= set(seen), f"missing: {sorted(stable - set(seen))}"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bogus": "1"}, "bogus"),
        ({"total_due_min": "lots"}, "total_due_min"),
        ({"total_due_min": "-5"}, "total_due_min"),
        ({"assessed_value_max": "NaN"}, "assessed_value_max"),
        ({"delinquent": "maybe"}, "delinquent"),
        ({"sort": "owner"}, "sort"),
        ({"limit": "101"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"state": "XX"}, "state"),
        ({"county": "dixie"}, "county"),
        ({"owner": "ab"}, "owner"),
        ({"total_due_min": "10", "total_due_max": "5"}, "total_due_min"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_input_is_422_naming_the_parameter(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    response = client.get("/v1/search", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["message"]
    assert any(field in detail["field"] for detail in error["details"])


def test_a_cursor_is_refused_with_other_filters(client: TestClient, db_session: Session) -> None:
    add_parcels(db_session, [ParcelSpec(total_due=f"{n}") for n in range(1, 6)])
    cursor = client.get("/v1/search", params={"limit": 2, "sort": "-total_due"}).json()[
        "next_cursor"
    ]
    response = client.get("/v1/search", params={"limit": 2, "sort": "total_due", "cursor": cursor})
    assert response.status_code == 422
    assert "cursor" in response.json()["error"]["message"]


@pytest.mark.usefixtures("parcels")
@pytest.mark.parametrize(("path", "q", "expected"), [
    ("/v1/search/owner", "SMITH", {"A-1", "A-2", "B-1", "C-1"}),
    ("/v1/search/owner", "holdings", {"A-2"}),
    ("/v1/search/address", "oak", {"A-1", "A-3", "B-1", "C-1"}),
    ("/v1/search/address", "main st", {"A-2"}),
])  # fmt: skip
def test_owner_and_address_search_find_substrings(
    client: TestClient, path: str, q: str, expected: set[str]
) -> None:
    response = client.get(path, params={"q": q})
    assert response.status_code == 200, response.text
    assert {item["parcel_id"] for item in response.json()["items"]} == expected


@pytest.mark.usefixtures("parcels")
def test_owner_search_takes_scope_and_refuses_short_or_unknown_input(client: TestClient) -> None:
    scoped = client.get("/v1/search/owner", params={"q": "smith", "state": "FL", "county": "levy"})
    assert [item["parcel_id"] for item in scoped.json()["items"]] == ["B-1"]
    assert client.get("/v1/search/owner", params={"q": "sm"}).status_code == 422
    blank = client.get("/v1/search/address", params={"q": "    "})
    assert blank.status_code == 422 and blank.json()["error"]["message"].startswith("q:")
    response = client.get("/v1/search/address", params={"q": "oak", "owner": "x"})
    assert response.status_code == 422
    assert "owner" in response.json()["error"]["message"]


def test_the_public_endpoints_are_documented_in_openapi(api_client: TestClient) -> None:
    spec = api_client.get("/openapi.json").json()
    for path in (
        "/v1/search", "/v1/search/owner", "/v1/search/address", "/v1/usage",
        "/v1/parcels/{state}/{county}/{parcel_id}",
        "/v1/parcels/{state}/{county}/{parcel_id}/history", "/v1/top-lists/{strategy}",
    ):  # fmt: skip
        assert path in spec["paths"], path
    search = spec["paths"]["/v1/search"]["get"]
    names = {parameter["name"] for parameter in search["parameters"]}
    assert {"owner", "total_due_min", "delinquent", "sort", "cursor"} <= names
    # The key is a security scheme (the Authorize button), not a plain parameter.
    assert {"ApiKey": []} in search["security"] and "x-api-key" not in names


@pytest.mark.parametrize("sort", ["-total_due", "assessed_value", "-due_to_value"])
def test_substring_pages_are_the_same_whether_found_by_walk_or_by_trigram_index(
    client: TestClient, db_session: Session, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    owners = ["SMITH JOHN", "SMITHSON AL", "JONES SMITH", "GARCIA ANA", "BLACKSMITH CO"]
    add_parcels(
        db_session,
        [
            ParcelSpec(
                owner=owners[n % len(owners)], total_due=None if n % 6 == 0 else f"{n % 4}00",
                assessed_value=f"{1000 + n % 7}",
            )
            for n in range(80)
        ],
    )  # fmt: skip
    params = {"owner": "smith", "sort": sort, "limit": 5}
    pages = {}
    # One walk finds every page; a second, longer walk is needed; only the index is used.
    for head_rows, max_head_rows in ((10_000, 10_000), (5, 10_000), (1, 0)):
        monkeypatch.setattr(parcel_search, "HEAD_ROWS", head_rows)
        monkeypatch.setattr(parcel_search, "MAX_HEAD_ROWS", max_head_rows)
        pages[head_rows] = [item["parcel_id"] for item in all_pages(client, params)]
    assert pages[10_000] == pages[5] == pages[1]
    assert len(pages[1]) == 64  # 4 of every 5 owners contain "smith"
