"""Worker ids are bound to credentials: no token can act, heartbeat or complete as a worker id
that another token uses, and no answer names the holder of a lease."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from db.models import WorkerCredential
from services.dispatch.worker_identity import build_directory, claim_worker_id, config_credential
from services.errors import Forbidden
from tests.conftest import WORKER_TOKEN
from tests.dispatch_helpers import clean_dispatch_queues, enqueue, lease, task_row

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
ROGUE_TOKEN = "second-worker-token"


def test_a_rogue_token_cannot_take_over_the_lease_holders_id(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["ROGUE-1"])
    [task] = lease(api_client, worker_headers)
    url = f"/internal/tasks/{task_id}/complete"

    as_itself = api_client.post(
        url, json={}, headers={"X-Worker-Token": ROGUE_TOKEN, "X-Worker-ID": "rogue-1"}
    )
    assert as_itself.status_code == 409
    assert "worker-test-1" not in as_itself.text  # the holder is never named
    posing = {"X-Worker-Token": ROGUE_TOKEN, "X-Worker-ID": "worker-test-1"}
    assert api_client.post(url, json={}, headers=posing).status_code == 403
    assert task_row(db_session, task_id)["status"] == "leased"

    done = api_client.post(url, json={}, headers=worker_headers)  # no lease_token: original
    assert done.status_code == 200, done.text
    assert task["lease_token"] == task_row(db_session, task_id)["lease_token"]


def test_a_heartbeat_under_another_tokens_id_neither_takes_its_commands_nor_its_leases(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    api_client.post("/internal/heartbeat", json={"active_tasks": 1}, headers=worker_headers)
    api_client.post(
        "/admin/workers/worker-test-1/commands", json={"command": "shutdown"}, headers=admin_headers
    )
    posing = {"X-Worker-Token": ROGUE_TOKEN, "X-Worker-ID": "worker-test-1"}

    stolen = api_client.post("/internal/heartbeat", json={"active_tasks": 1}, headers=posing)
    mine = api_client.post("/internal/heartbeat", json={}, headers=worker_headers)

    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "FORBIDDEN"
    assert mine.json()["commands"] == ["shutdown"]


def test_a_per_worker_token_may_use_only_its_ids_and_reserves_them(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    created = api_client.post(
        "/admin/worker-credentials",
        json={"worker_ids": "fleet-a-*", "owner": "fleet A"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert (
        token.startswith("tlw_")
        and "token"
        not in api_client.get("/admin/worker-credentials", headers=admin_headers).json()[
            "credentials"
        ][0]
    )

    def heartbeat(token: str, worker_id: str) -> int:
        headers = {"X-Worker-Token": token, "X-Worker-ID": worker_id}
        return int(api_client.post("/internal/heartbeat", json={}, headers=headers).status_code)

    assert heartbeat(token, "fleet-a-1") == 200
    assert heartbeat(token, "fleet-b-1") == 403  # outside its binding
    assert heartbeat(WORKER_TOKEN, "fleet-a-2") == 403  # reserved for the bound token
    assert heartbeat(WORKER_TOKEN, "worker-test-1") == 200

    revoked = api_client.post(
        f"/admin/worker-credentials/{created.json()['id']}/revoke", headers=admin_headers
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert heartbeat(token, "fleet-a-1") == 401


def test_a_claim_passes_on_only_when_its_credential_is_no_longer_active(
    db_session: Session,
) -> None:
    old, new = config_credential("old-fleet-token-123"), config_credential("new-fleet-token-456")
    both = build_directory(["old-fleet-token-123", "new-fleet-token-456"], [], loaded_at=0)
    claim_worker_id(db_session, "w-rotated", old, both)
    with pytest.raises(Forbidden):
        claim_worker_id(db_session, "w-rotated", new, both)

    rotated = build_directory(["new-fleet-token-456"], [], loaded_at=time.monotonic())
    claim_worker_id(db_session, "w-rotated", new, rotated)
    with pytest.raises(Forbidden):
        claim_worker_id(db_session, "w-rotated", old, rotated)


def test_worker_ids_of_a_credential_are_checked_when_it_is_created(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    for bad in ("*", "a*b*", "x" * 129, "nul\x00"):
        response = api_client.post(
            "/admin/worker-credentials",
            json={"worker_ids": bad, "owner": "o"},
            headers=admin_headers,
        )
        assert response.status_code == 422, (bad, response.text)
    assert db_session.query(WorkerCredential).count() == 0


def test_worker_tokens_are_managed_from_the_cli(api_client: TestClient) -> None:
    from click.testing import CliRunner

    from cli.main import main as gatewayctl

    runner = CliRunner()
    created = runner.invoke(
        gatewayctl, ["worker-tokens", "create", "--worker-ids", "cli-7", "--owner", "ops"]
    )
    assert created.exit_code == 0, created.output
    token = created.output.strip().splitlines()[-1]
    headers = {"X-Worker-Token": token, "X-Worker-ID": "cli-7"}
    assert api_client.post("/internal/heartbeat", json={}, headers=headers).status_code == 200
    assert "cli-7" in runner.invoke(gatewayctl, ["worker-tokens", "list"]).output

    assert runner.invoke(gatewayctl, ["worker-tokens", "revoke", "1"]).exit_code == 0
    assert runner.invoke(gatewayctl, ["worker-tokens", "list"]).output == ""
