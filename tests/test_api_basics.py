"""The API's contract for every route: request ids, the error envelope, metrics, auth."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway_api.auth import WorkerDep, is_token_accepted
from tests.conftest import WORKER_TOKEN


def test_health_answers_without_auth(api_client: TestClient) -> None:
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "app": "internal"}


def test_every_response_carries_a_request_id(api_client: TestClient) -> None:
    fresh = api_client.get("/health")
    echoed = api_client.get("/health", headers={"X-Request-ID": "abc-123"})
    hostile = api_client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["X-Request-ID"])
    assert echoed.headers["X-Request-ID"] == "abc-123"
    assert len(hostile.headers["X-Request-ID"]) == 32


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_unknown_route_is_a_404_envelope(api_client: TestClient) -> None:
    assert_envelope(api_client.get("/no/such/route"), 404, "NOT_FOUND")


def test_wrong_method_is_a_405_envelope(api_client: TestClient) -> None:
    assert_envelope(api_client.delete("/health"), 405, "METHOD_NOT_ALLOWED")


@pytest.fixture
def probe_app(api_app: FastAPI) -> FastAPI:
    """The real app plus two probe routes that only tests mount."""
    from gateway_api.app import create_app

    app = create_app()

    @app.get("/probe/boom/{item_id}")
    def boom(item_id: int) -> dict[str, int]:
        raise RuntimeError(f"secret stack detail {item_id}")

    @app.get("/probe/worker")
    def who_am_i(worker: WorkerDep) -> dict[str, str]:
        return {"worker_id": worker.worker_id}

    return app


def test_validation_errors_are_a_422_envelope_naming_the_field(probe_app: FastAPI) -> None:
    with TestClient(probe_app, raise_server_exceptions=False) as client:
        body = assert_envelope(client.get("/probe/boom/not-a-number"), 422, "VALIDATION_ERROR")
    assert body["error"]["details"][0]["field"] == "path.item_id"
    assert "path.item_id" in body["error"]["message"]


def test_a_crash_is_a_500_envelope_without_the_stack_trace(probe_app: FastAPI) -> None:
    with TestClient(probe_app, raise_server_exceptions=False) as client:
        response = client.get("/probe/boom/7")
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "secret" not in response.text and "Traceback" not in response.text
    assert body["error"]["message"] == "internal server error"


def test_worker_routes_need_a_configured_token(probe_app: FastAPI) -> None:
    with TestClient(probe_app, raise_server_exceptions=False) as client:
        missing = client.get("/probe/worker")
        wrong = client.get("/probe/worker", headers={"X-Worker-Token": "nope"})
        good = client.get(
            "/probe/worker", headers={"X-Worker-Token": "second-worker-token", "X-Worker-ID": "w9"}
        )
    assert_envelope(missing, 401, "UNAUTHORIZED")
    assert_envelope(wrong, 401, "UNAUTHORIZED")
    assert good.json() == {"worker_id": "w9"}


def test_a_worker_that_does_not_name_itself_gets_an_id_of_its_token_and_host(
    probe_app: FastAPI,
) -> None:
    token = {"X-Worker-Token": "second-worker-token"}
    with TestClient(probe_app, raise_server_exceptions=False) as client:
        unnamed = client.get("/probe/worker", headers=token).json()["worker_id"]
        blank = client.get("/probe/worker", headers={**token, "X-Worker-ID": "  "})
        starred = client.get("/probe/worker", headers={**token, "X-Worker-ID": "a*"})
        other_token = client.get("/probe/worker", headers={"X-Worker-Token": WORKER_TOKEN})
    assert unnamed.startswith("anon-") and blank.json()["worker_id"] == unnamed
    assert other_token.json()["worker_id"].startswith("anon-")
    assert other_token.json()["worker_id"] != unnamed
    assert "X-Worker-ID" in assert_envelope(starred, 422, "VALIDATION_ERROR")["error"]["message"]


def test_an_empty_token_list_rejects_every_token() -> None:
    assert not is_token_accepted("anything", [])
    assert not is_token_accepted("", ["", "a"])
    assert is_token_accepted("b", ["a", "b"])


def test_metrics_label_requests_by_route_template(probe_app: FastAPI) -> None:
    with TestClient(probe_app, raise_server_exceptions=False) as client:
        client.get("/probe/boom/41")
        client.get("/probe/boom/42")
        client.get("/definitely/missing/99")
        text = client.get("/metrics").text
    assert 'gateway_requests_total{method="GET",path="/probe/boom/{item_id}",status="500"}' in text
    assert 'gateway_request_duration_seconds_count{method="GET",path="/probe/boom/{item_id}"}' in (
        text
    )
    assert 'path="<unmatched>",status="404"' in text
    assert "/probe/boom/41" not in text and "/definitely/missing/99" not in text
