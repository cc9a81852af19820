"""The Redis fast path of leasing leaves kombu's own state: a batch held by an API process
that dies (SIGKILL) before writing its leases is brought back by kombu's visibility restore."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.dispatch_helpers import (
    age_unacked_past_visibility,  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    assert_queue_depth,
    clean_dispatch_queues,
    enqueue,
    lease,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
OTHER_WORKER = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": "worker-test-2"}


_TAKE_BATCH_AND_DIE = """
import os, signal
from services.dispatch.lease_loop import queue_levels
from services.dispatch.broker_client import message_source, pooled_connection

with pooled_connection() as connection:
    taken = message_source(connection).take(queue_levels(["demo"]), 5)
assert len(taken) == 2, taken
os.kill(os.getpid(), signal.SIGKILL)  # dies holding the batch, before any lease is written
"""


def test_on_redis_a_batch_taken_by_the_fast_path_of_a_killed_process_is_restored_by_kombu(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    import subprocess
    import sys

    from settings import get_settings
    from tasks.dispatch_jobs import republish_vanished
    from tests.celery_workers import REPO_ROOT

    settings = get_settings()
    if not settings.is_redis_broker:
        pytest.skip("the batch fast path exists only on the Redis transport")
    ids = enqueue(api_client, admin_headers, ["BATCH-1", "BATCH-2"])
    crashed = subprocess.run(
        [sys.executable, "-c", _TAKE_BATCH_AND_DIE], cwd=REPO_ROOT, check=False
    )
    assert crashed.returncode == -9
    assert_queue_depth(0, "demo")  # held as unacked, in kombu's own keys
    assert age_unacked_past_visibility() == 2

    assert republish_vanished(grace_s=3600) == 0  # only kombu's own restore brings them back

    assert_queue_depth(2, "demo")
    tasks = lease(api_client, worker_headers, capacity=5)
    assert sorted(t["task_id"] for t in tasks) == sorted(str(i) for i in ids)
    assert all(t["attempt"] == 1 for t in tasks)
    assert lease(api_client, OTHER_WORKER, capacity=5) == []
    assert_ledger_balanced(db_session, enqueued=2)
