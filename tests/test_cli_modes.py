"""Every operator command works in both modes: straight on the database, and through a
running API's admin routes (GATEWAY_API_URL + GATEWAY_ADMIN_TOKEN), with and without --json."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from cli.main import main
from db.models import RejectReason
from services.ingest.rejects import RejectedItem, record_rejects
from settings import get_settings
from tests.conftest import ADMIN_TOKEN
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    clean_dispatch_queues,
    enqueue,
    lease,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]


@pytest.fixture(params=["direct", "api"])
def cli_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """``api``: the CLI calls a real API process, as an operator without database access."""
    if request.param == "api":
        address = request.getfixturevalue("running_api")
        os.environ.update({"GATEWAY_API_URL": address, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN})
    get_settings.cache_clear()
    try:
        yield str(request.param)
    finally:
        for name in ("GATEWAY_API_URL", "GATEWAY_ADMIN_TOKEN"):
            os.environ.pop(name, None)
        get_settings.cache_clear()


def run(*args: str, exit_code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == exit_code, (args, result.output, result.exception)
    return result


def run_json(*args: str) -> Any:
    return json.loads(run(*args, "--json").stdout)


def task_ids(session: Session) -> list[uuid.UUID]:
    session.rollback()
    rows = session.execute(text("SELECT id FROM scrape_tasks ORDER BY parcel_id"))
    return list(rows.scalars())


def test_enqueue_queue_depth_and_the_task_commands(
    cli_mode: str, tmp_path: Path, db_session: Session
) -> None:
    listing = tmp_path / "tasks.csv"
    listing.write_text(
        "platform,state,county,parcel_id,priority\n"
        "demo,FL,dixie,MODE-1,2\ndemo,FL,dixie,MODE-2,2\ndemo,FL,dixie,MODE-3,\n"
        "nosuch,FL,dixie,MODE-4,\nnosuch,FL,dixie,MODE-5,\n"
    )

    enqueued = run("enqueue", str(listing), exit_code=1)
    assert "enqueued 3, already active 0, invalid 2" in enqueued.output
    assert "rejected 2 lines: unknown platform (2)" in enqueued.output

    depth = run("queues", "depth")
    assert "p2" in depth.output and "p3" in depth.output
    depths = run_json("queues", "depth", "--platform", "demo")["queues"]
    assert [(q["priority"], q["queued"]) for q in depths] == [(2, 2), (3, 1)]
    assert all(q["oldest_age_s"] >= 0 and q["queue"].startswith("scrape.demo.") for q in depths)

    assert "balanced" in run("tasks", "balance").output
    assert run_json("tasks", "balance") == {
        "enqueued": 3, "succeeded": 0, "dead": 0, "cancelled": 0, "active": 3,
    }  # fmt: skip

    first, second, _ = task_ids(db_session)
    assert "status queued" in run("tasks", "show", str(first)).output
    assert run_json("tasks", "show", str(first))["parcel_id"] == "MODE-1"
    assert "status cancelled" in run("tasks", "cancel", str(first)).output
    assert run_json("tasks", "cancel", str(second))["status"] == "cancelled"
    again = run("tasks", "cancel", str(first), exit_code=1)
    assert "already cancelled" in again.output
    missing = run("tasks", "show", str(uuid.uuid4()), exit_code=1)
    assert "does not exist" in missing.output
    assert run_json("tasks", "balance")["cancelled"] == 2


def test_dead_letters_and_workers(
    cli_mode: str,
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    ids = enqueue(api_client, admin_headers, ["MODE-DL-1", "MODE-DL-2"])
    for task in lease(api_client, worker_headers, capacity=2):
        body = {"reason": "parser_bug", "message": "KeyError", "retry_suggested": False}
        url = f"/internal/tasks/{task['task_id']}/fail"
        assert api_client.post(url, json=body, headers=worker_headers).status_code == 200

    listed = run("dead-letters", "list", "--reason", "parser_bug")
    assert all(str(task_id) in listed.output for task_id in ids)
    assert len(run_json("dead-letters", "list", "--older-than", "0s")["items"]) == 2
    assert run_json("dead-letters", "list", "--older-than", "1h")["items"] == []
    assert "KeyError" in run("dead-letters", "show", str(ids[0])).output
    assert run_json("dead-letters", "show", str(ids[0]))["last_error_reason"] == "parser_bug"
    assert "re-driven 1" in run("dead-letters", "redrive", "--id", str(ids[0])).output
    assert "purged 1" in run("dead-letters", "purge", "--platform", "demo", "--yes").output

    api_client.post("/internal/heartbeat", json={"platforms": ["demo"]}, headers=worker_headers)
    assert "worker-test-1" in run("workers", "list").output
    workers = run_json("workers", "list", "--state", "alive")["workers"]
    assert [w["worker_id"] for w in workers] == ["worker-test-1"]
    commanded = run("workers", "command", "worker-test-1", "pause")
    assert "queued pause for worker-test-1" in commanded.output


def test_platforms_keys_worker_tokens_rejects_and_queues(
    cli_mode: str, db_session: Session
) -> None:
    assert "demo" in run("platforms", "list").output
    assert "demo" in {p["name"] for p in run_json("platforms", "list")["platforms"]}
    assert "added mode_gis" in run("platforms", "add", "mode_gis", "--max-retries", "2").output
    assert "disabled" in run("platforms", "disable", "mode_gis").output
    assert "enabled" in run("platforms", "enable", "mode_gis").output
    assert "backoff=60s" in run("platforms", "set-retry", "mode_gis", "--backoff-base", "60").output
    assert "scrape.demo.p1" in run("queues").output
    assert run("queues", "--service").output.strip() == "ingest,maintenance"

    created = run("api-keys", "create", "--tier", "free", "--owner", "Ops")
    (key_id,) = [key["id"] for key in run_json("api-keys", "list")["keys"]]
    assert "free" in run("api-keys", "list").output and f"created key {key_id}" in created.output
    assert "rotated key" in run("api-keys", "rotate", str(key_id)).output
    assert "premium" in run("api-keys", "set-tier", str(key_id), "premium").output
    assert "revoked" in run("api-keys", "revoke", str(key_id)).output

    made = run("worker-tokens", "create", "--worker-ids", "mode-*", "--owner", "Ops")
    (credential,) = run_json("worker-tokens", "list")["credentials"]
    assert f"created worker token {credential['id']}" in made.output
    assert "mode-*" in run("worker-tokens", "list").output
    assert "revoked" in run("worker-tokens", "revoke", str(credential["id"])).output

    item = {"parcel_id": "MODE-R", "platform": "demo", "state": "FL", "county": "dixie"}
    record_rejects(db_session, [RejectedItem(item, RejectReason.POISON, "value too long")])
    db_session.commit()
    (reject,) = run_json("ingest-rejects", "list")["items"]
    assert "poison 1" in run("ingest-rejects", "list").output
    assert "value too long" in run("ingest-rejects", "show", str(reject["id"])).output
    assert json.loads(run_json("ingest-rejects", "show", str(reject["id"]))["payload"]) == item
    purge = ["ingest-rejects", "purge", "--older-than", "1d", "--yes"]
    assert "purged 0" in run(*purge).output


def test_rate_limits_are_set_listed_and_cleared(cli_mode: str) -> None:
    assert run("rate-limits", "set", "qpublic", "5/min").output.startswith("qpublic ")
    county = run_json("rate-limits", "set", "qpublic/Dixie", "2")
    assert (county["scope"], county["per_minute"], county["effective_per_minute"]) == (
        "qpublic/dixie",
        2,
        2.0,
    )
    listed = run_json("rate-limits", "list")["rate_limits"]
    assert [(item["scope"], item["per_minute"]) for item in listed] == [
        ("qpublic", 5),
        ("qpublic/dixie", 2),
    ]
    assert "qpublic/dixie" in run("rate-limits", "list").output
    assert "cleared qpublic/dixie" in run("rate-limits", "clear", "qpublic/dixie").output
    assert run_json("rate-limits", "clear", "qpublic") == {"scope": "qpublic", "cleared": True}
    assert "no rate limit" in run("rate-limits", "clear", "qpublic", exit_code=1).output
    assert "starts a minute" in run("rate-limits", "set", "qpublic", "fast", exit_code=2).output


def test_the_version_and_a_refusal_of_import_legacy_in_api_mode(cli_mode: str) -> None:
    assert run("--version").output.startswith("gatewayctl ")
    if cli_mode == "api":
        refused = run("import-legacy", "--redis-url", "redis://127.0.0.1:1/0", exit_code=1)
        assert "unset GATEWAY_API_URL" in refused.output
