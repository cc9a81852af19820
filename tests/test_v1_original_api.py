"""The original public API's surface: ``/v1/properties``, ``Authorization: Bearer``, CORS
from settings, and the original's ``/v1/usage`` fields."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from settings import ConfigurationError, get_settings, load_settings
from tests.public_factories import ParcelSpec, add_api_key, add_parcels
from tests.test_api_basics import assert_envelope

SHARED_ID = "01-08-13-0000-3634-1100"


@pytest.fixture
def parcels(db_session: Session) -> None:
    add_parcels(
        db_session,
        [
            ParcelSpec(county="Dixie", parcel_id=SHARED_ID, owner="SMITH JOHN", total_due="$500"),
            ParcelSpec(county="Levy", parcel_id="010813000036341100", owner="DOE JANE",
                       total_due="$900"),
            ParcelSpec(county="Levy", parcel_id="R12074-000", owner="ROE RICHARD",
                       total_due="$1,200.00"),
        ],
    )  # fmt: skip


@pytest.mark.usefixtures("parcels")
def test_a_property_is_found_by_its_id_alone(api_client: TestClient) -> None:
    response = api_client.get("/v1/properties/r12074000")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["parcel_id"], body["state"], body["county"]) == ("R12074-000", "FL", "levy")
    assert body["owner"] == body["owner_name"] == "ROE RICHARD"  # the original's field name
    assert body["total_due"] == "1200.00" and "data" in body


@pytest.mark.usefixtures("parcels")
def test_an_id_in_several_counties_is_a_409_listing_them(api_client: TestClient) -> None:
    response = api_client.get(f"/v1/properties/{SHARED_ID}")
    error = assert_envelope(response, 409, "CONFLICT")["error"]
    assert error["details"]["candidates"] == [
        {"state": "FL", "county": "dixie", "parcel_id": SHARED_ID},
        {"state": "FL", "county": "levy", "parcel_id": "010813000036341100"},
    ]
    assert "county" in error["message"]

    narrowed = api_client.get(f"/v1/properties/{SHARED_ID}", params={"county": "Levy"})
    assert narrowed.status_code == 200 and narrowed.json()["owner"] == "DOE JANE"
    both = api_client.get(
        f"/v1/properties/{SHARED_ID}", params={"state": "Florida", "county": "dixie"}
    )
    assert both.status_code == 200 and both.json()["owner"] == "SMITH JOHN"


@pytest.mark.usefixtures("parcels")
def test_property_lookups_are_checked(api_client: TestClient) -> None:
    assert_envelope(api_client.get("/v1/properties/NO-SUCH-1"), 404, "NOT_FOUND")
    suggested = api_client.get(
        "/v1/properties/R12074-001", params={"state": "FL", "county": "levy"}
    )
    assert assert_envelope(suggested, 404, "NOT_FOUND")["error"]["details"]["did_you_mean"] == [
        "R12074-000"
    ]
    bad_state = api_client.get(f"/v1/properties/{SHARED_ID}", params={"state": "XX"})
    assert assert_envelope(bad_state, 422, "VALIDATION_ERROR")["error"]["message"].startswith(
        "state"
    )
    extra = api_client.get(f"/v1/properties/{SHARED_ID}", params={"expand": "1"})
    assert "expand" in assert_envelope(extra, 422, "VALIDATION_ERROR")["error"]["message"]


@pytest.mark.usefixtures("parcels")
def test_properties_search_is_the_search(api_client: TestClient) -> None:
    params = {"state": "FL", "county": "levy", "sort": "-total_due"}
    aliased = api_client.get("/v1/properties", params=params)
    searched = api_client.get("/v1/search", params=params)
    assert aliased.status_code == 200, aliased.text
    assert aliased.json() == searched.json()
    assert [item["parcel_id"] for item in aliased.json()["items"]] == [
        "R12074-000", "010813000036341100",
    ]  # fmt: skip
    assert api_client.get("/v1/properties", params={"limit": 0}).status_code == 422


def test_a_bearer_api_key_works_like_x_api_key(api_client: TestClient, db_session: Session) -> None:
    issued = add_api_key(db_session, "premium")

    bearer = api_client.get("/v1/usage", headers={"Authorization": f"Bearer {issued.key}"})
    header = api_client.get("/v1/usage", headers={"X-API-Key": issued.key})

    for response in (bearer, header):
        assert response.status_code == 200, response.text
        assert response.json()["tier"] == "premium"
        assert response.json()["user_id"] == f"key:{issued.record.id}"
    assert bearer.headers["X-RateLimit-Limit"] == header.headers["X-RateLimit-Limit"]


def test_bearer_keys_are_checked(api_client: TestClient, db_session: Session) -> None:
    issued = add_api_key(db_session, "free")
    other = add_api_key(db_session, "free")

    wrong = api_client.get("/v1/usage", headers={"Authorization": "Bearer tlk_not_a_key"})
    basic = api_client.get("/v1/usage", headers={"Authorization": "Basic dXNlcjpwdw=="})
    clash = api_client.get(
        "/v1/usage", headers={"Authorization": f"Bearer {issued.key}", "X-API-Key": other.key}
    )
    same = api_client.get(
        "/v1/usage", headers={"Authorization": f"bearer {issued.key}", "X-API-Key": issued.key}
    )

    assert_envelope(wrong, 401, "UNAUTHORIZED")
    assert basic.status_code == 200 and basic.json()["user_id"] == "anonymous"
    assert "Authorization" in assert_envelope(clash, 422, "VALIDATION_ERROR")["error"]["message"]
    assert same.status_code == 200 and same.json()["tier"] == "free"


def test_usage_carries_the_original_fields(api_client: TestClient) -> None:
    api_client.get("/v1/search")
    api_client.get("/v1/properties")
    body = api_client.get("/v1/usage").json()
    assert body["user_id"] == "anonymous" and body["tier"] == "anonymous"
    assert body["usage"]["daily_search"] == 2
    assert body["usage"]["daily_details"] == 0
    features = {f["feature"]: f["used_today"] for f in body["features"]}
    assert body["usage"]["daily_top_lists"] == features["top_lists"]


def test_no_cross_origin_access_by_default(api_client: TestClient) -> None:
    preflight = api_client.options(
        "/v1/search",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    simple = api_client.get("/v1/search", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


@pytest.fixture
def cors_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    from gateway_api.app import create_app

    monkeypatch.setenv("GATEWAY_PUBLIC_CORS_ORIGINS", "https://app.taxlien.online, https://x.test/")
    get_settings.cache_clear()
    try:
        yield create_app()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_cors_origins_come_from_settings(cors_app: FastAPI) -> None:
    with TestClient(cors_app) as client:
        preflight = client.options(
            "/v1/properties/R1",
            headers={
                "Origin": "https://app.taxlien.online",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        allowed = client.get("/v1/search", headers={"Origin": "https://x.test"})
        other = client.get("/v1/search", headers={"Origin": "https://evil.test"})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.taxlien.online"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "X-Request-ID" in preflight.headers
    assert allowed.headers["access-control-allow-origin"] == "https://x.test"
    assert "X-RateLimit-Remaining" in allowed.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in other.headers


def test_a_malformed_cors_origin_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_PUBLIC_CORS_ORIGINS", "app.taxlien.online/path")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith("GATEWAY_PUBLIC_CORS_ORIGINS")
