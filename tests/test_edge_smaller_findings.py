"""The smaller edge findings: raw uploads capped as a whole and their crash leftovers removed,
configuration errors without secrets, no well-known or short tokens outside the local stack,
Flower's password off the command line, and Flower and Prometheus kept off the host."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from settings import ConfigurationError, get_settings, load_settings
from tests.celery_workers import REPO_ROOT


def test_a_raw_upload_is_capped_across_all_its_parts(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    limit = get_settings().raw_file_max_bytes
    filler = [("note", (None, "x" * (64 * 1024))) for _ in range(limit // (64 * 1024) + 4)]
    response = api_client.post(
        "/internal/raw-files",
        files=[("file", ("page.html", b"<html></html>", "text/html")), *filler],
        headers=worker_headers,
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_half_written_uploads_of_a_crashed_process_are_removed_at_start() -> None:
    from gateway_api.app import create_app
    from gateway_api.routes.raw_files import raw_file_storage

    incoming = raw_file_storage().incoming_dir()
    crashed, live = incoming / "upload-crashed", incoming / "upload-live"
    crashed.write_bytes(b"half a page")
    live.write_bytes(b"being written")
    two_hours_ago = time.time() - 7200
    os.utime(crashed, (two_hours_ago, two_hours_ago))

    create_app()

    assert not crashed.exists() and live.exists()
    live.unlink()


def test_configuration_errors_never_show_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_POSTGRES_URL", "postgres://u:hunter2-secret@db:5432/x")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "hunter2" not in str(caught.value) and "postgres://u:***@db" in str(caught.value)
    monkeypatch.delenv("GATEWAY_POSTGRES_URL")
    monkeypatch.setenv("GATEWAY_CURSOR_SECRET", "short-secret")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "short-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "token"),
    [
        ("GATEWAY_WORKER_TOKENS", "local-worker-token"),
        ("GATEWAY_ADMIN_TOKENS", "local-admin-token"),
        ("GATEWAY_WORKER_TOKENS", "short"),
    ],
)
def test_well_known_or_short_tokens_are_refused_outside_the_local_stack(
    monkeypatch: pytest.MonkeyPatch, variable: str, token: str
) -> None:
    monkeypatch.setenv(variable, token)
    with pytest.raises(ConfigurationError, match=variable):
        load_settings()
    monkeypatch.setenv("GATEWAY_LOCAL_STACK", "true")
    assert token in getattr(load_settings(), variable.removeprefix("GATEWAY_").lower())


def test_flower_gets_its_password_from_the_environment_and_stays_off_the_host() -> None:
    compose: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "--basic-auth" not in " ".join(services["flower"]["command"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    for internal in ("flower", "prometheus"):
        assert "ports" not in services[internal], internal
    stack_source = Path(REPO_ROOT / "gateway_localstack" / "stack.py").read_text()
    assert "--basic-auth" not in stack_source and "FLOWER_BASIC_AUTH" in stack_source
