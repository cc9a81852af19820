"""Readiness tells which dependency is down; liveness does not care."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway_localstack.servers import EmbeddedPostgres, EmbeddedRedis, start_redis_on_a_free_port
from settings import get_settings
from tests.outages import TcpProxy


@pytest.mark.broker
def test_readiness_is_ok_when_everything_is_up(api_client: TestClient) -> None:
    response = api_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok"},
    }


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = start_redis_on_a_free_port(tmp_path / "redis")
    yield server
    server.stop()


def test_a_stopped_redis_makes_readiness_503_naming_redis(
    throwaway_redis: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway_api.app import create_app

    monkeypatch.setenv("GATEWAY_REDIS_URL", throwaway_redis.url)
    monkeypatch.setenv("GATEWAY_BROKER_URL", throwaway_redis.url)
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/health/ready").status_code == 200
            throwaway_redis.stop()
            response = client.get("/health/ready")
            live = client.get("/health")
    finally:
        get_settings.cache_clear()

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["redis"].startswith("down")
    assert checks["broker"].startswith("down")
    assert live.status_code == 200


@pytest.mark.broker  # the configured broker is probed too
def test_a_stopped_postgres_makes_readiness_503_naming_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.session import configure_engine, get_engine
    from gateway_api.app import create_app

    postgres = EmbeddedPostgres(tmp_path / "pg")
    url = postgres.start(database="readiness")
    monkeypatch.setenv("GATEWAY_POSTGRES_URL", url)
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/health/ready").status_code == 200
            postgres.stop()
            response = client.get("/health/ready")
    finally:
        postgres.stop()
        get_engine().dispose()
        monkeypatch.undo()
        get_settings.cache_clear()
        configure_engine("tests")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("down")
    assert checks["redis"] == "ok"


@pytest.mark.broker
def test_a_stopped_broker_makes_readiness_503_naming_only_the_broker(
    stoppable_broker: TcpProxy,
) -> None:
    from gateway_api.app import create_app

    with TestClient(create_app()) as client:
        assert client.get("/health/ready").status_code == 200
        stoppable_broker.stop()
        response = client.get("/health/ready")

    assert response.status_code == 503
    checks = response.json()["checks"]
    assert (checks["database"], checks["redis"]) == ("ok", "ok")
    assert checks["broker"].startswith("down")
