"""Settings: one object, clear one-line errors for missing or malformed values."""

from __future__ import annotations

import subprocess
import sys

import pytest

from settings import ConfigurationError, GatewaySettings, load_settings
from tests.celery_workers import REPO_ROOT


def test_defaults_keep_the_old_gateway_port_and_lease_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_PORT", raising=False)
    settings = GatewaySettings()
    assert settings.port == 8081
    assert settings.lease_timeout_s == 300


def test_token_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = ("a" * 16, "b" * 16, "c" * 16)
    monkeypatch.setenv("GATEWAY_WORKER_TOKENS", f" {a} , {b},,{c} ")
    assert load_settings().worker_tokens == [a, b, c]


def test_broker_defaults_to_redis_and_accepts_amqp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://127.0.0.1:7000/0")
    monkeypatch.delenv("GATEWAY_BROKER_URL", raising=False)
    assert load_settings().celery_broker_url == "redis://127.0.0.1:7000/0"
    monkeypatch.setenv("GATEWAY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    settings = load_settings()
    assert settings.celery_broker_url.startswith("amqp://")
    assert not settings.is_redis_broker


def test_a_malformed_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "eighty")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("GATEWAY_PORT:")
    assert "eighty" in message
    assert "\n" not in message


def test_a_visibility_timeout_shorter_than_a_task_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_TASK_TIME_LIMIT_S", "3600")
    monkeypatch.setenv("GATEWAY_VISIBILITY_TIMEOUT_S", "3600")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "GATEWAY_VISIBILITY_TIMEOUT_S (3600) must exceed GATEWAY_TASK_TIME_LIMIT_S (3600)"
    )


def test_a_run_lease_is_renewed_three_times_a_lease_unless_told_and_never_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GATEWAY_CELERY_RUN_LEASE_S", raising=False)
    monkeypatch.delenv("GATEWAY_CELERY_RUN_LEASE_RENEW_S", raising=False)
    settings = load_settings()
    assert (settings.celery_run_lease_s, settings.run_lease_renew_interval_s) == (60, 20)
    monkeypatch.setenv("GATEWAY_CELERY_RUN_LEASE_S", "30")
    monkeypatch.setenv("GATEWAY_CELERY_RUN_LEASE_RENEW_S", "30")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "GATEWAY_CELERY_RUN_LEASE_RENEW_S (30.0) must be at most half of "
        "GATEWAY_CELERY_RUN_LEASE_S (30)"
    )


def test_a_result_outbox_grace_within_the_ingest_outage_wait_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_RESULT_OUTBOX_GRACE_S", "60")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "GATEWAY_RESULT_OUTBOX_GRACE_S (60) must exceed GATEWAY_INGEST_OUTAGE_WAIT_S (60.0)"
    )


def test_a_wrong_database_scheme_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_POSTGRES_URL", "mysql://localhost/db")
    with pytest.raises(ConfigurationError, match="GATEWAY_POSTGRES_URL"):
        load_settings()


def test_a_missing_server_url_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GATEWAY_POSTGRES_URL", raising=False)
    with pytest.raises(ConfigurationError, match="GATEWAY_POSTGRES_URL is not set"):
        load_settings().check_servers()


def test_the_api_refuses_to_start_with_one_clear_line_and_no_traceback() -> None:
    env = {"PATH": "/usr/bin:/bin", "GATEWAY_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway_api"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "configuration error: GATEWAY_PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'not-a-port')"
    ]
