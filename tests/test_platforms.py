"""Platforms as a managed resource: the admin API, the CLI, the migration's names, and what
enabling, disabling and a retry policy do to enqueue and leasing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from cli.main import main
from tests.dispatch_helpers import enqueue, lease, task_row
from tests.test_api_basics import assert_envelope

ORIGINAL_AND_FLEET_PLATFORMS = ["beacon", "qpublic", "floridatax", "tyler", "bid4assets"]


@pytest.fixture
def county_platform() -> Iterator[str]:
    """A platform's queues emptied first: a RabbitMQ broker is not flushed between tests."""
    from services.dispatch.broker_client import queue_for
    from services.queues import scrape_queue_names
    from tasks.app import app

    name = "levy_gis"
    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            for queue_name in scrape_queue_names([name]):
                queue = queue_for(queue_name).bind(channel)
                queue.declare()
                queue.purge()
        finally:
            channel.close()
    yield name


def create(client: TestClient, headers: dict[str, str], name: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/admin/platforms", json={"name": name, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def patch(client: TestClient, headers: dict[str, str], name: str, **fields: Any) -> dict[str, Any]:
    response = client.patch(f"/admin/platforms/{name}", json=fields, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_original_and_the_fleet_platform_names_exist_after_migration(
    db_session: Session,
) -> None:
    rows = db_session.execute(text("SELECT name, is_enabled FROM platforms")).all()
    enabled = {name for name, is_enabled in rows if is_enabled}
    assert set(ORIGINAL_AND_FLEET_PLATFORMS) <= enabled


def test_platforms_are_added_listed_shown_and_changed(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = create(
        api_client, admin_headers, "Levy_GIS", description="Levy County GIS", max_retries=5
    )
    assert created["name"] == "levy_gis" and created["is_enabled"] is True
    assert created["retry_policy"] == {"max_retries": 5, "retry_backoff_base_s": 30}

    listed = api_client.get("/admin/platforms", headers=admin_headers).json()["platforms"]
    assert {"levy_gis", *ORIGINAL_AND_FLEET_PLATFORMS} <= {p["name"] for p in listed}

    changed = patch(api_client, admin_headers, "levy_gis", retry_backoff_base_s=120)
    assert (changed["max_retries"], changed["retry_backoff_base_s"]) == (5, 120)
    assert changed["description"] == "Levy County GIS"  # fields not sent stay
    reset = patch(api_client, admin_headers, "levy_gis", max_retries=None, is_enabled=False)
    assert reset["retry_policy"] == {"max_retries": 3, "retry_backoff_base_s": 120}
    shown = api_client.get("/admin/platforms/levy_gis", headers=admin_headers).json()
    assert shown["is_enabled"] is False and shown["max_retries"] is None


def test_platform_requests_are_checked(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    create(api_client, admin_headers, "levy_gis")
    again = api_client.post("/admin/platforms", json={"name": "levy_gis"}, headers=admin_headers)
    assert "levy_gis" in assert_envelope(again, 409, "CONFLICT")["error"]["message"]
    bad_name = api_client.post(
        "/admin/platforms", json={"name": "Levy GIS!"}, headers=admin_headers
    )
    assert "name" in assert_envelope(bad_name, 422, "VALIDATION_ERROR")["error"]["message"]
    bad_retry = api_client.patch(
        "/admin/platforms/levy_gis", json={"max_retries": 99}, headers=admin_headers
    )
    assert "max_retries" in assert_envelope(bad_retry, 422, "VALIDATION_ERROR")["error"]["message"]
    extra = api_client.patch("/admin/platforms/levy_gis", json={"naem": 1}, headers=admin_headers)
    assert_envelope(extra, 422, "VALIDATION_ERROR")
    missing = api_client.patch("/admin/platforms/nosuch", json={}, headers=admin_headers)
    assert_envelope(missing, 404, "NOT_FOUND")
    assert_envelope(api_client.get("/admin/platforms"), 401, "UNAUTHORIZED")


@pytest.mark.broker
def test_a_disabled_platform_is_skipped_by_leasing_and_refused_by_enqueue(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    county_platform: str,
) -> None:
    create(api_client, admin_headers, county_platform)
    enqueue(api_client, admin_headers, ["LV-1"], platform=county_platform)
    patch(api_client, admin_headers, county_platform, is_enabled=False)

    assert lease(api_client, worker_headers, platforms=county_platform) == []
    refused = api_client.post(
        "/admin/tasks",
        json={"tasks": [{"platform": county_platform, "state": "FL", "county": "levy",
                         "parcel_id": "LV-2"}]},
        headers=admin_headers,
    ).json()  # fmt: skip
    assert refused["items"][0]["status"] == "invalid"
    assert "disabled" in refused["items"][0]["error"]

    patch(api_client, admin_headers, county_platform, is_enabled=True)
    [task] = lease(api_client, worker_headers, platforms=county_platform)
    assert task["target"]["parcel_id"] == "LV-1"


@pytest.mark.broker
def test_an_unknown_platform_is_still_a_422_naming_it(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    response = api_client.get("/internal/work?platforms=nosuch", headers=worker_headers)
    assert "nosuch" in assert_envelope(response, 422, "VALIDATION_ERROR")["error"]["message"]


@pytest.mark.broker
def test_a_platform_retry_policy_applies_to_tasks_enqueued_after_it(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    county_platform: str,
    db_session: Session,
) -> None:
    create(api_client, admin_headers, county_platform, max_retries=0)
    [task_id] = enqueue(api_client, admin_headers, ["LV-9"], platform=county_platform)
    [task] = lease(api_client, worker_headers, platforms=county_platform)

    failed = api_client.post(
        f"/internal/tasks/{task['task_id']}/fail",
        json={"reason": "network_error", "message": "timeout", "lease_token": task["lease_token"]},
        headers=worker_headers,
    ).json()

    assert failed["moved_to_dlq"] is True and failed["should_retry"] is False
    assert task_row(db_session, task_id)["status"] == "dead"


def test_the_cli_lists_adds_enables_disables_and_sets_retries(db_session: Session) -> None:
    runner = CliRunner()

    added = runner.invoke(main, ["platforms", "add", "levy_gis", "--description", "Levy GIS",
                                 "--max-retries", "2"])  # fmt: skip
    disabled = runner.invoke(main, ["platforms", "disable", "levy_gis"])
    retry = runner.invoke(
        main, ["platforms", "set-retry", "levy_gis", "--max-retries", "default",
               "--backoff-base", "90"]
    )  # fmt: skip
    listed = runner.invoke(main, ["platforms", "list"])
    enabled = runner.invoke(main, ["platforms", "enable", "levy_gis"])

    assert added.exit_code == 0, added.output
    assert "added levy_gis" in added.output and "retries=2" in added.output
    assert "disabled" in disabled.output
    assert "retries=3 (default)" in retry.output and "backoff=90s" in retry.output
    assert all(name in listed.output for name in ORIGINAL_AND_FLEET_PLATFORMS)
    assert "levy_gis" in listed.output and "enabled" in enabled.output
    row = db_session.execute(
        text("SELECT is_enabled, max_retries, retry_backoff_base_s FROM platforms"
             " WHERE name = 'levy_gis'")
    ).one()  # fmt: skip
    assert tuple(row) == (True, None, 90)


def test_the_cli_reports_bad_platform_commands_in_one_line() -> None:
    runner = CliRunner()
    runner.invoke(main, ["platforms", "add", "levy_gis"])

    duplicate = runner.invoke(main, ["platforms", "add", "levy_gis"])
    unknown = runner.invoke(main, ["platforms", "disable", "nosuch"])
    bad_number = runner.invoke(main, ["platforms", "set-retry", "levy_gis", "--max-retries", "x"])
    nothing = runner.invoke(main, ["platforms", "set-retry", "levy_gis"])

    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    assert unknown.exit_code == 1 and "'nosuch' does not exist" in unknown.output
    assert bad_number.exit_code == 2 and "--max-retries" in bad_number.output
    assert nothing.exit_code == 2
