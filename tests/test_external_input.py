"""Text PostgreSQL cannot store, and numbers its columns and intervals cannot hold, are a 422
naming the field wherever they come from, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.ingest.items import MAX_PARCEL_ID_CHARS
from tests.public_factories import add_api_key

NUL = "a\x00b"
SURROGATE = "a\ud800b"  # json.dumps writes it as the escape "\ud800"


def post_json(client: TestClient, path: str, body: object, headers: dict[str, str]) -> Any:
    """``json.dumps`` escapes a lone surrogate as ``\\ud800``, as a buggy client would send."""
    return client.post(
        path, content=json.dumps(body), headers={**headers, "Content-Type": "application/json"}
    )


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in body["error"]["message"], body


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
def test_bad_text_in_json_bodies_is_a_422_naming_the_field(
    api_client: TestClient, worker_headers: dict[str, str], admin_headers: dict[str, str], bad: str
) -> None:
    heartbeat = post_json(
        api_client, "/internal/heartbeat", {"platforms": ["demo", bad]}, worker_headers
    )
    assert_refused(heartbeat, "platforms")
    item = {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": bad}
    enqueued = post_json(api_client, "/admin/tasks", {"tasks": [item]}, admin_headers)
    assert enqueued.status_code == 200, enqueued.text
    [outcome] = enqueued.json()["items"]
    assert outcome["status"] == "invalid" and "parcel_id" in outcome["error"]
    purge = post_json(api_client, "/admin/dead-letters/purge", {"platform": bad}, admin_headers)
    assert_refused(purge, "platform")


def test_bad_text_in_query_parameters_is_a_422_naming_the_parameter(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    bad = NUL  # a query string cannot carry a lone surrogate: its bytes decode as UTF-8
    key = {"X-API-Key": add_api_key(db_session, "enterprise").key}
    for name in ("owner", "address", "property_type", "state", "county", "cursor"):
        assert_refused(api_client.get("/v1/search", params={name: bad}, headers=key), name)
    for path in ("/v1/search/owner", "/v1/search/address"):
        assert_refused(api_client.get(path, params={"q": f"abc{bad}"}, headers=key), "q")
    assert_refused(
        api_client.get("/admin/dead-letters", params={"platform": bad}, headers=admin_headers),
        "platform",
    )


def test_bad_text_in_path_parameters_is_a_422(api_client: TestClient) -> None:
    assert_refused(api_client.get("/v1/parcels/FL/dixie/a%00b"), "parcel_id")
    assert_refused(api_client.get("/v1/top-lists/a%00b"), "strategy")


def test_numbers_beyond_their_column_or_interval_are_a_422(
    api_client: TestClient, worker_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    assert_refused(
        api_client.post(
            "/internal/heartbeat", json={"active_tasks": 5.6e20}, headers=worker_headers
        ),
        "active_tasks",
    )
    assert_refused(
        api_client.post("/internal/heartbeat", json={"cpu_percent": 1e308}, headers=worker_headers),
        "cpu_percent",
    )
    assert_refused(
        api_client.post(
            "/admin/dead-letters/redrive", json={"newer_than_s": 3e307}, headers=admin_headers
        ),
        "newer_than_s",
    )
    assert_refused(
        api_client.post(
            "/admin/dead-letters/purge", json={"older_than_s": 3e307}, headers=admin_headers
        ),
        "older_than_s",
    )
    assert_refused(
        api_client.get(
            "/admin/dead-letters", params={"older_than_s": "1e300"}, headers=admin_headers
        ),
        "older_than_s",
    )
    assert_refused(
        api_client.get("/admin/dead-letters", params={"offset": 2**70}, headers=admin_headers),
        "offset",
    )
    assert_refused(
        api_client.post("/admin/api-keys/99999999999999999999/revoke", headers=admin_headers),
        "key_id",
    )


def test_enqueue_and_results_share_one_parcel_id_limit(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    item = {"platform": "demo", "state": "FL", "county": "dixie"}
    longest, too_long = "P" * MAX_PARCEL_ID_CHARS, "P" * (MAX_PARCEL_ID_CHARS + 1)
    tasks = [{**item, "parcel_id": longest}, {**item, "parcel_id": too_long}]
    answer = api_client.post("/admin/tasks", json={"tasks": tasks}, headers=admin_headers).json()
    assert [i["status"] for i in answer["items"]] == ["enqueued", "invalid"]
