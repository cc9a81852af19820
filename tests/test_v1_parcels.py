"""``GET /v1/parcels/{state}/{county}/{parcel_id}`` and its history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.public_factories import ParcelSpec, add_api_key, add_parcels

DIXIE_ID = "1-32-4N-4W-0000-00322-0300"


@pytest.fixture
def parcel(db_session: Session) -> None:
    add_parcels(
        db_session,
        [
            ParcelSpec(
                state="FL", county="St. Johns", parcel_id=DIXIE_ID, owner="DOE JANE",
                total_due="$1,234.56", assessed_value="$12,345.60", delinquent="Y",
                extra={"Legal Description": "LOT 4 BLK 2"},
            )
        ],
    )  # fmt: skip


@pytest.mark.usefixtures("parcel")
@pytest.mark.parametrize(
    "path",
    [
        f"/v1/parcels/FL/St. Johns/{DIXIE_ID}",
        "/v1/parcels/fl/stjohns/1324N4W0000003220300",
        "/v1/parcels/Florida/st_johns/1.32.4n.4w.0000.00322.0300",
        "/v1/parcels/FL/saint johns county/1 32 4N 4W 0000 00322 0300",
    ],
)
def test_any_spelling_of_the_identity_finds_the_parcel(api_client: TestClient, path: str) -> None:
    response = api_client.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parcel_id"] == DIXIE_ID  # as scraped, for display
    assert body["parcel_key"] == "1324N4W0000003220300"
    assert (body["state"], body["county"]) == ("FL", "stjohns")
    assert body["owner_name"] == "DOE JANE" and body["total_due"] == "1234.56"
    assert body["due_to_value"].startswith("0.1")
    assert body["data"]["Legal Description"] == "LOT 4 BLK 2"
    for internal in ("id", "data_hash", "raw_html_hash", "platform"):
        assert internal not in body


@pytest.mark.usefixtures("parcel")
def test_an_unknown_parcel_is_404_with_the_normalised_key(api_client: TestClient) -> None:
    response = api_client.get("/v1/parcels/FL/stjohns/1-32-4N-4W-0000-00322-0301")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["details"]["parcel_key"] == "1324N4W0000003220301"
    assert "stjohns" in error["message"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/parcels/XX/dixie/123", "state"),
        ("/v1/parcels/FL/---/123", "county"),
        ("/v1/parcels/FL/dixie/-.-", "parcel_id"),
        ("/v1/parcels/FL/dixie/123?expand=all", "expand"),
    ],
)
def test_bad_identity_parts_are_422_naming_them(
    api_client: TestClient, path: str, field: str
) -> None:
    response = api_client.get(path)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(field)


def test_history_lists_scrapes_newest_first_with_what_changed(
    api_client: TestClient, db_session: Session
) -> None:
    now = datetime.now(UTC)
    for minutes_ago, due in ((30, "$100.00"), (20, "$150.00"), (10, "$150.00")):
        extra = {"note": "paid"} if minutes_ago == 10 else None
        add_parcels(
            db_session,
            [
                ParcelSpec(parcel_id="H-1", total_due=due, extra=extra,
                           scraped_at=now - timedelta(minutes=minutes_ago))
            ],
        )  # fmt: skip
    headers = {"X-API-Key": add_api_key(db_session, "free").key}

    response = api_client.get("/v1/parcels/FL/dixie/h1/history", headers=headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parcel"]["total_due"] == "150.00"
    entries = body["entries"]
    assert len(entries) == 3
    assert entries[0]["changes"] == [
        {"field": "note", "kind": "added", "before": None, "after": "paid"}
    ]
    assert entries[1]["changes"] == [
        {"field": "total_due", "kind": "changed", "before": "$100.00", "after": "$150.00"}
    ]
    assert entries[2]["is_first"] is True and entries[2]["changes"] == []
    assert all(set(entry) == {"scraped_at", "is_first", "changes", "data"} for entry in entries)

    limited = api_client.get("/v1/parcels/FL/dixie/H-1/history?limit=1", headers=headers)
    assert len(limited.json()["entries"]) == 1
    unknown = api_client.get("/v1/parcels/FL/dixie/H-1/history?since=1", headers=headers)
    assert unknown.status_code == 422 and "since" in unknown.json()["error"]["message"]
    missing = api_client.get("/v1/parcels/FL/dixie/H-2/history", headers=headers)
    assert missing.status_code == 404


def test_a_mistyped_id_gets_suggestions_from_the_same_county(
    api_client: TestClient, db_session: Session
) -> None:
    ids = ["010813-00003634-1100", "010813-00003634-1200", "010813-00003638-0000", "99-1"]
    add_parcels(db_session, [ParcelSpec(parcel_id=parcel_id) for parcel_id in ids])
    response = api_client.get("/v1/parcels/FL/dixie/010813-00003634-1101")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["details"]["did_you_mean"] == ["010813-00003634-1100", "010813-00003634-1200"]
    assert "did you mean 010813-00003634-1100" in error["message"]
    nothing_close = api_client.get("/v1/parcels/FL/dixie/55-55-55")
    assert nothing_close.json()["error"]["details"]["did_you_mean"] == []
