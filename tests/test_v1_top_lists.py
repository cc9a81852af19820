"""``GET /v1/top-lists/{strategy}``: the named rankings and their scope filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.public_factories import ParcelSpec, add_parcels


@pytest.fixture
def parcels(db_session: Session) -> None:
    add_parcels(
        db_session,
        [
            ParcelSpec(parcel_id="T-1", total_due="5000", assessed_value="500000", delinquent="Y"),
            ParcelSpec(parcel_id="T-2", total_due="$900", assessed_value="$1,000", delinquent="Y"),
            ParcelSpec(parcel_id="T-3", total_due="2000", assessed_value="20000", delinquent="N"),
            ParcelSpec(parcel_id="T-4", total_due="$0.00", assessed_value="$80,000"),
            ParcelSpec(parcel_id="T-5", total_due=None, assessed_value="$5,000"),
            ParcelSpec(county="Levy", parcel_id="L-1", total_due="$7,000", assessed_value=None,
                       delinquent="Y"),
            ParcelSpec(state="AZ", county="Pima", parcel_id="Z-1", total_due="$9,999",
                       assessed_value="$10,000", delinquent="Y"),
        ],
    )  # fmt: skip
    # T-2 became delinquent most recently, then L-1, then Z-1, then T-1.
    for minutes_ago, parcel_id in ((1, "T-2"), (2, "L-1"), (3, "Z-1"), (4, "T-1")):
        db_session.execute(
            text("UPDATE parcels SET updated_at = :at WHERE parcel_id = :p"),
            {"at": datetime.now(UTC) - timedelta(minutes=minutes_ago), "p": parcel_id},
        )
    db_session.commit()


def ranked(client: TestClient, strategy: str, **params: str) -> list[str]:
    response = client.get(f"/v1/top-lists/{strategy}", params=params)
    assert response.status_code == 200, response.text
    assert response.json()["strategy"] == strategy
    return [item["parcel_id"] for item in response.json()["items"]]


@pytest.mark.usefixtures("parcels")
@pytest.mark.parametrize(
    ("strategy", "params", "expected"),
    [
        ("highest-due", {}, ["Z-1", "L-1", "T-1", "T-3", "T-2"]),
        ("highest-due", {"state": "FL"}, ["L-1", "T-1", "T-3", "T-2"]),
        ("highest-due", {"state": "FL", "county": "dixie"}, ["T-1", "T-3", "T-2"]),
        # 0.9999, 0.9, 0.1, 0.01 — parcels without a value or without a due are left out
        ("due-to-value", {}, ["Z-1", "T-2", "T-3", "T-1"]),
        ("due-to-value", {"state": "FL", "county": "Dixie"}, ["T-2", "T-3", "T-1"]),
        ("recently-delinquent", {}, ["T-2", "L-1", "Z-1", "T-1"]),
        ("recently-delinquent", {"state": "AZ"}, ["Z-1"]),
    ],
)
def test_each_strategy_ranks_within_its_scope(
    api_client: TestClient, strategy: str, params: dict[str, str], expected: list[str]
) -> None:
    assert ranked(api_client, strategy, **params) == expected


@pytest.mark.usefixtures("parcels")
def test_top_lists_page_with_cursors(api_client: TestClient) -> None:
    first = api_client.get("/v1/top-lists/highest-due", params={"limit": 2}).json()
    second = api_client.get(
        "/v1/top-lists/highest-due", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [i["parcel_id"] for i in first["items"] + second["items"]] == [
        "Z-1", "L-1", "T-1", "T-3",
    ]  # fmt: skip


def test_an_unknown_strategy_is_404_listing_the_valid_ones(api_client: TestClient) -> None:
    response = api_client.get("/v1/top-lists/cheapest")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["details"]["valid"] == ["due-to-value", "highest-due", "recently-delinquent"]
    assert "highest-due" in error["message"]


def test_the_strategies_are_listed(api_client: TestClient) -> None:
    names = [s["name"] for s in api_client.get("/v1/top-lists").json()["strategies"]]
    assert names == ["highest-due", "due-to-value", "recently-delinquent"]


def test_top_list_input_is_validated(api_client: TestClient) -> None:
    assert api_client.get("/v1/top-lists/highest-due?limit=500").status_code == 422
    response = api_client.get("/v1/top-lists/highest-due?sort=total_due")
    assert response.status_code == 422 and "sort" in response.json()["error"]["message"]
    assert api_client.get("/v1/top-lists/highest-due?county=dixie").status_code == 422
