"""Dispatch throughput: enqueue (ledger + publish) and lease/complete cycles for HTTP workers,
against the old gateway's Redis lists (LPUSH, RPOPLPUSH into a processing list, LREM on
completion) measured on the same Redis in the same run.

The idle-fleet case (``bench.idle_fleet``) measures what 1,000 waiting long polls cost the
API and how fast an enqueued task reaches one of them.

The new path does more per task by design (a durable ledger row, a fencing token, an ack
after the commit); the figures show what that costs.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime

TASKS = 5_000
CAPACITY = 100


def _report(label: str, count: int, seconds: float) -> None:
    sys.stdout.write(f"  {label:<44} {count:>6} tasks {seconds:7.2f} s {count / seconds:9.0f}/s\n")


def _measure_gateway() -> None:
    from db.session import session_scope
    from services.dispatch.broker_client import enqueue_and_publish, lease_from_broker
    from services.dispatch.enqueue import EnqueueRequest
    from services.dispatch.leases import complete_leases

    requests = [EnqueueRequest("demo", "FL", "dixie", f"BENCH-{n:06d}") for n in range(TASKS)]
    started = time.perf_counter()
    for start in range(0, TASKS, 1000):
        enqueue_and_publish(requests[start : start + 1000])
    _report("enqueue: ledger rows + publish (1,000/batch)", TASKS, time.perf_counter() - started)

    started = time.perf_counter()
    leased = 0
    while True:
        tasks = lease_from_broker(
            platforms=["demo"], capacity=CAPACITY, worker_id="bench", lease_timeout_s=300
        )
        if not tasks:
            break
        leased += len(tasks)
        with session_scope() as session:
            complete_leases(
                session,
                [(t.id, t.lease_token) for t in tasks],
                worker_id="bench",
                now=datetime.now(UTC),
            )
    _report(f"lease + batch complete (capacity {CAPACITY})", leased, time.perf_counter() - started)


def _measure_baseline() -> None:
    import redis

    from settings import get_settings

    client = redis.Redis.from_url(get_settings().cache_url)
    queue, processing = "bench:queue:demo:p3", "bench:processing:bench"
    client.delete(queue, processing)
    payloads = [
        json.dumps({"task_id": str(uuid.uuid4()), "parcel_id": f"BENCH-{n:06d}"})
        for n in range(TASKS)
    ]
    started = time.perf_counter()
    for payload in payloads:
        client.lpush(queue, payload)
    _report("baseline enqueue: LPUSH", TASKS, time.perf_counter() - started)

    started = time.perf_counter()
    taken = 0
    while True:
        popped = [client.rpoplpush(queue, processing) for _ in range(CAPACITY)]
        batch = [item.decode() for item in popped if isinstance(item, bytes)]
        if not batch:
            break
        taken += len(batch)
        for item in batch:
            client.lrem(processing, 1, item)
    _report("baseline RPOPLPUSH + LREM", taken, time.perf_counter() - started)
    client.delete(queue, processing)
    client.close()


def run() -> None:
    from bench import idle_fleet

    sys.stdout.write(f"dispatch: {TASKS} demo tasks\n")
    _measure_gateway()
    _measure_baseline()
    # Its own tasks (with unique ids) on the same servers; `python -m bench.idle_fleet` alone.
    idle_fleet.run()
