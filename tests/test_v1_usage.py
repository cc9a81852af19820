"""``GET /v1/usage`` and the search time limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.errors import ServiceUnavailable
from services.public import search as parcel_search
from services.public.search_filters import make_filters
from services.public.tiers import get_tier


def test_anonymous_usage_shows_the_anonymous_limits_and_what_is_not_included(
    api_client: TestClient,
) -> None:
    api_client.get("/v1/search")
    body = api_client.get("/v1/usage").json()
    anonymous = get_tier("anonymous")
    assert body["tier"] == "anonymous" and body["api_key_prefix"] is None
    assert body["rate_limit"]["per_minute"] == anonymous.per_minute
    assert body["rate_limit"]["remaining"] == anonymous.burst - 2
    features = {f["feature"]: f for f in body["features"]}
    assert features["search"]["used_today"] == 1
    assert features["history"] == {
        "feature": "history",
        "daily_limit": 0,
        "used_today": 0,
        "remaining_today": 0,
    }


def test_usage_refuses_unknown_parameters(api_client: TestClient) -> None:
    response = api_client.get("/v1/usage", params={"verbose": "1"})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("verbose")


def test_a_search_over_its_time_limit_is_cancelled_with_503(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_page(session: Session, *args: Any, **kwargs: Any) -> list[Any]:
        session.execute(text("SELECT pg_sleep(1)"))
        return []

    monkeypatch.setattr(parcel_search, "_fetch_page", slow_page)
    with pytest.raises(ServiceUnavailable, match="50 ms"):
        parcel_search.search_parcels(db_session, make_filters(), timeout_ms=50)
