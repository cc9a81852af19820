"""docker-compose.yml and the Prometheus config, checked by parsing (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.celery_workers import REPO_ROOT

STACK = {
    "postgres", "redis", "migrate", "api", "worker", "service-worker", "beat", "flower",
    "prometheus", "grafana", "rabbitmq",
}  # fmt: skip
PROFILES = {"prometheus": ["monitoring"], "grafana": ["monitoring"], "rabbitmq": ["rabbitmq"]}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == STACK


def test_monitoring_and_rabbitmq_are_profiles_and_the_rest_always_runs(
    compose: dict[str, Any],
) -> None:
    profiles = {
        name: spec["profiles"] for name, spec in compose["services"].items() if "profiles" in spec
    }
    assert profiles == PROFILES


def test_env_example_sets_every_variable_the_compose_file_requires() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (REPO_ROOT / ".env.example").read_text().splitlines()
    assigned = {line.split("=", 1)[0] for line in example if re.match(r"^[A-Z_]+=", line)}
    assert required and required <= assigned


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    missing = [name for name in STACK - {"migrate"} if "healthcheck" not in services[name]]
    assert missing == []


def test_services_wait_for_healthy_dependencies_and_the_migration(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("api", "worker", "service-worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["restart"] == "no"


def test_redis_is_append_only_and_never_evicts(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"


def test_flower_requires_basic_auth_and_workers_send_events(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]  # read by Flower itself
    assert " -E " in services["worker"]["command"][-1]
    assert "-E" in services["service-worker"]["command"]
    service_queues = services["service-worker"]["command"]
    assert service_queues[service_queues.index("-Q") + 1] == "ingest,maintenance"


def test_prometheus_scrapes_the_api_and_flower() -> None:
    config = yaml.safe_load((REPO_ROOT / "ops" / "prometheus.yml").read_text())
    targets = {
        target for job in config["scrape_configs"] for group in job["static_configs"]
        for target in group["targets"]
    }  # fmt: skip
    assert targets == {"api:8081", "flower:5555"}


def test_the_image_installs_the_locked_requirements_and_checks_its_health() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "USER gateway" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="the docker-compose client is not installed"
)
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    env = {
        "POSTGRES_PASSWORD": "x", "GATEWAY_WORKER_TOKENS": "w", "GATEWAY_ADMIN_TOKENS": "a",
        "FLOWER_BASIC_AUTH": "u:p", "GRAFANA_ADMIN_PASSWORD": "g", "RABBITMQ_PASSWORD": "r",
        "GATEWAY_CURSOR_SECRET": "c" * 16, "PATH": "/usr/bin:/bin",
    }  # fmt: skip
    result = subprocess.run(
        ["docker-compose", "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "--quiet"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
