"""The operators' commands: enqueue a file, dead letters, workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cli.main import main
from tests.dispatch_helpers import (
    assert_ledger_balanced,
    assert_queue_depth,
    clean_dispatch_queues,
    enqueue,
    lease,
)
from tests.shared_data import DIXIE_PARCEL_IDS

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]


def test_enqueueing_the_dixie_county_id_list_is_idempotent(db_session: Session) -> None:
    ids = [line.strip() for line in DIXIE_PARCEL_IDS.read_text().splitlines() if line.strip()]
    args = ["enqueue", str(DIXIE_PARCEL_IDS), "--platform", "qpublic", "--state", "FL"]
    args += ["--county", "dixie"]

    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)

    assert first.exit_code == 0, first.output
    unique = len(set(ids))
    assert f"enqueued {unique}, already active {len(ids) - unique}, invalid 0" in first.output
    assert f"enqueued 0, already active {len(ids)}, invalid 0" in second.output
    assert_queue_depth(unique, "qpublic", 3)
    assert_ledger_balanced(db_session, enqueued=unique)


def test_a_csv_reports_invalid_rows_by_line(tmp_path: Path, db_session: Session) -> None:
    csv_file = tmp_path / "tasks.csv"
    csv_file.write_text(
        "platform,state,county,parcel_id,priority\n"
        "demo,FL,dixie,A-1,1\n"
        "nosuch,FL,dixie,A-2,\n"
        "demo,FL,dixie,,\n"
        "demo,FL,,A-4,high\n"
        ",FL,dixie,A-5,\n"
    )

    result = CliRunner().invoke(main, ["enqueue", str(csv_file), "--county", "dixie"])

    assert result.exit_code == 1, result.output
    assert "enqueued 1, already active 0, invalid 4" in result.output
    assert "rejected 4 lines: " in result.output
    assert "unknown platform (1)" in result.output
    assert "line 3: unknown platform 'nosuch'" in result.output
    assert "line 4: parcel_id is empty" in result.output
    assert "line 5: priority 'high' is not a number" in result.output
    assert "line 6: no platform" in result.output
    assert_queue_depth(1, "demo", 1)


def test_dead_letters_can_be_listed_shown_redriven_and_purged(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    ids = enqueue(api_client, admin_headers, ["DL-1", "DL-2"])
    for task in lease(api_client, worker_headers, capacity=2):
        api_client.post(
            f"/internal/tasks/{task['task_id']}/fail",
            json={"reason": "parser_bug", "message": "KeyError", "retry_suggested": False},
            headers=worker_headers,
        )
    runner = CliRunner()

    listed = runner.invoke(main, ["dead-letters", "list", "--reason", "parser_bug"])
    shown = runner.invoke(main, ["dead-letters", "show", str(ids[0]), "--json"])
    redriven = runner.invoke(main, ["dead-letters", "redrive", "--id", str(ids[0])])
    purged = runner.invoke(main, ["dead-letters", "purge", "--platform", "demo", "--yes"])
    missing = runner.invoke(main, ["dead-letters", "show", str(ids[0])])

    assert listed.exit_code == 0 and all(str(i) in listed.output for i in ids)
    assert '"last_error_reason": "parser_bug"' in shown.output and "KeyError" in shown.output
    assert "re-driven 1" in redriven.output
    assert "purged 1" in purged.output
    assert missing.exit_code == 1 and "does not exist" in missing.output
    balance = assert_ledger_balanced(db_session, enqueued=2)
    assert (balance["active"], balance["cancelled"]) == (1, 1)


def test_workers_are_listed_and_commanded(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    api_client.post("/internal/heartbeat", json={"platforms": ["demo"]}, headers=worker_headers)
    runner = CliRunner()

    listed = runner.invoke(main, ["workers", "list"])
    commanded = runner.invoke(main, ["workers", "command", "worker-test-1", "shutdown"])
    unknown = runner.invoke(main, ["workers", "command", "nobody", "pause"])
    beat = api_client.post("/internal/heartbeat", json={}, headers=worker_headers).json()

    assert "worker-test-1" in listed.output and "alive" in listed.output
    assert "queued shutdown for worker-test-1" in commanded.output
    assert unknown.exit_code == 1 and "never sent a heartbeat" in unknown.output
    assert beat["commands"] == ["shutdown"]
