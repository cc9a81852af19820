"""HTTP dispatch, as a fleet sees it: N concurrent async workers lease over HTTP (``GET
/internal/work``) and complete each task (one ``complete`` per task, or one batch call per
lease), against the gateway and, in the same run with the same driver, against the old
design rebuilt behind the same web stack (``bench.legacy_gateway``).

Each case drains a fresh set of queued ``demo`` tasks; it reports tasks/s, the lease
latency (p50/p99 of the ``/internal/work`` calls that handed out tasks) and the CPU seconds
the server and the driver used. Each server is first warmed up as a running one would be:
it drains ``WARM_UP_TASKS`` tasks in the measured shape before the clock starts (its pools
filled, its statements compiled). ``python -m bench.http_dispatch --tasks 2000`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import psutil

from bench.api_process import LEGACY_COMMAND, WORKER_TOKEN, api_process, cpu_seconds
from bench.environment import bench_servers

TASKS = 5_000
ENQUEUE_BATCH = 1_000
DRAIN_TIMEOUT_S = 300.0
WARM_UP_TASKS = 500
# The legacy shape is measured with each server on one process, then on two (uvicorn workers):
# on this 2-core machine, what a second process buys each design.
API_PROCESSES = (1, 2)
LONG_POLL_S = 1


@dataclass(frozen=True)
class Shape:
    workers: int
    capacity: int
    is_batch_complete: bool

    @property
    def label(self) -> str:
        completes = "batch complete" if self.is_batch_complete else "one complete per task"
        return f"{self.workers} workers, capacity {self.capacity}, {completes}"


LEGACY_SHAPE = Shape(workers=16, capacity=10, is_batch_complete=False)
GATEWAY_ONLY_SHAPES = (
    Shape(workers=16, capacity=10, is_batch_complete=True),
    Shape(workers=4, capacity=100, is_batch_complete=True),
)


@dataclass
class Drain:
    total: int
    done: int = 0
    errors: int = 0
    lease_latencies: list[float] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def count_done(self, count: int) -> None:
        self.done += count
        if self.done >= self.total:
            self.finished.set()


@dataclass(frozen=True)
class DrainReport:
    tasks: int
    seconds: float
    errors: int
    lease_p50_s: float
    lease_p99_s: float
    server_cpu_s: float
    driver_cpu_s: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def _headers(n: int) -> dict[str, str]:
    return {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": f"bench-{n:03d}"}


async def _start_worker(session: aiohttp.ClientSession, n: int) -> None:
    """A worker's first call, before the clock starts: the gateway registers its id (once per
    worker, as a running fleet has long done). The old design had no such route."""
    async with session.post("/internal/heartbeat", json={}, headers=_headers(n)) as response:
        await response.read()


async def _work_loop(session: aiohttp.ClientSession, drain: Drain, shape: Shape, n: int) -> None:
    headers = _headers(n)
    params = {"platforms": "demo", "capacity": str(shape.capacity), "wait": str(LONG_POLL_S)}
    while not drain.finished.is_set():
        started = time.perf_counter()
        async with session.get("/internal/work", params=params, headers=headers) as response:
            if response.status != 200:
                drain.errors += 1
                await asyncio.sleep(0.1)
                continue
            tasks = (await response.json())["tasks"]
        if not tasks:
            continue
        drain.lease_latencies.append(time.perf_counter() - started)
        if shape.is_batch_complete:
            refs = [{"task_id": t["task_id"], "lease_token": t.get("lease_token")} for t in tasks]
            async with session.post(
                "/internal/tasks/complete", json={"tasks": refs}, headers=headers
            ) as response:
                body = await response.json()
                drain.errors += len(body.get("errors", [])) if response.status == 200 else 1
            drain.count_done(len(tasks))
            continue
        for task in tasks:
            async with session.post(
                f"/internal/tasks/{task['task_id']}/complete",
                json={"lease_token": task.get("lease_token")},
                headers=headers,
            ) as response:
                is_done = response.status == 200 and (await response.json()).get("success")
            if not is_done:
                drain.errors += 1
            drain.count_done(1)


async def drive(url: str, server: psutil.Process, shape: Shape, total: int) -> DrainReport:
    """Run ``shape.workers`` workers until ``total`` tasks are completed (or the timeout)."""
    drain = Drain(total=total)
    me = psutil.Process()
    connector = aiohttp.TCPConnector(limit=shape.workers * 2)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:
        await asyncio.gather(*(_start_worker(session, n) for n in range(shape.workers)))
        server_cpu, driver_cpu = cpu_seconds([server]), _own_cpu_seconds(me)
        started = time.perf_counter()
        workers = [
            asyncio.create_task(_work_loop(session, drain, shape, n)) for n in range(shape.workers)
        ]
        try:
            await asyncio.wait_for(drain.finished.wait(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            sys.stdout.write(f"  (timed out: {drain.done} of {total} done)\n")
        seconds = time.perf_counter() - started
        server_cpu = cpu_seconds([server]) - server_cpu
        driver_cpu = _own_cpu_seconds(me) - driver_cpu
        # Workers stop as a fleet does: each finishes what it holds (a long poll in progress
        # may still hand it tasks), so no lease is left behind for the next case.
        await asyncio.wait(workers, timeout=LONG_POLL_S + 30)
    ordered = sorted(drain.lease_latencies) or [float("nan")]
    return DrainReport(
        tasks=drain.done,
        seconds=seconds,
        errors=drain.errors,
        lease_p50_s=ordered[len(ordered) // 2],
        lease_p99_s=ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)],
        server_cpu_s=server_cpu,
        driver_cpu_s=driver_cpu,
    )


def _own_cpu_seconds(process: psutil.Process) -> float:
    """The driver's own CPU (embedded servers and the API are its children: not counted)."""
    times = process.cpu_times()
    return float(times.user + times.system)


def enqueue_gateway_tasks(count: int) -> float:
    """Queue ``count`` demo tasks through the ledger (as the CLI does); returns seconds taken."""
    from services.dispatch.broker_client import enqueue_and_publish
    from services.dispatch.enqueue import EnqueueRequest

    run = secrets.token_hex(4)
    requests = [EnqueueRequest("demo", "FL", "dixie", f"HTTP-{run}-{n:06d}") for n in range(count)]
    started = time.perf_counter()
    for start in range(0, count, ENQUEUE_BATCH):
        enqueue_and_publish(requests[start : start + ENQUEUE_BATCH])
    return time.perf_counter() - started


def enqueue_legacy_tasks(count: int) -> float:
    """LPUSH the old design's task JSON into ``queue:demo:p3``; returns seconds taken."""
    import redis

    from bench.legacy_gateway import queue_key
    from settings import get_settings

    client = redis.Redis.from_url(get_settings().cache_url)
    created_at = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    pipeline = client.pipeline(transaction=False)
    for n in range(count):
        task = {
            "task_id": str(uuid.uuid4()),
            "type": "scrape",
            "platform": "demo",
            "target": {"parcel_id": f"LEGACY-{n:06d}", "state": "FL", "county": "dixie"},
            "priority": 3,
            "created_at": created_at,
        }
        pipeline.lpush(queue_key("demo", 3), json.dumps(task))
    pipeline.execute()
    seconds = time.perf_counter() - started
    client.close()
    return seconds


def _clear_legacy_queue() -> None:
    import redis

    from bench.legacy_gateway import queue_key
    from settings import get_settings

    client = redis.Redis.from_url(get_settings().cache_url)
    client.delete(queue_key("demo", 3))
    client.close()


def _print_drain(label: str, report: DrainReport) -> None:
    sys.stdout.write(
        f"  {label:<11} {report.tasks:>6} tasks {report.seconds:7.2f} s {report.rate:8.0f}/s"
        f"  lease p50 {report.lease_p50_s * 1000:6.1f} ms p99 {report.lease_p99_s * 1000:6.1f} ms"
        f"  CPU server {report.server_cpu_s:5.1f} s driver {report.driver_cpu_s:5.1f} s"
        f"  errors {report.errors}\n"
    )
    sys.stdout.flush()


def run(total: int = TASKS, shapes: Sequence[Shape] = GATEWAY_ONLY_SHAPES) -> None:
    sys.stdout.write(
        f"http dispatch: {total} demo tasks per case, driven over HTTP"
        f" (each server warmed up by a drain of {WARM_UP_TASKS})\n"
    )
    seconds = enqueue_legacy_tasks(total)  # the old design had no producer: for reference
    sys.stdout.write(f"  baseline enqueue (LPUSH, pipelined): {total / seconds:9.0f} tasks/s\n")
    _clear_legacy_queue()
    for processes in API_PROCESSES:
        plural = "es" if processes > 1 else ""
        sys.stdout.write(f"  {LEGACY_SHAPE.label}, {processes} API process{plural} each:\n")
        baselines = _drain_old_designs(total, processes)
        env = {"GATEWAY_API_WORKERS": str(processes)}
        with api_process(extra_env=env) as (url, process):
            enqueue_gateway_tasks(WARM_UP_TASKS)
            asyncio.run(drive(url, process, LEGACY_SHAPE, WARM_UP_TASKS))
            rate = total / enqueue_gateway_tasks(total)
            sys.stdout.write(f"  gateway enqueue (ledger + publish, dedup): {rate:6.0f}/s\n")
            gateway = asyncio.run(drive(url, process, LEGACY_SHAPE, total))
            _print_drain("gateway", gateway)
            for label, baseline in baselines.items():
                sys.stdout.write(f"  ratio gateway / {label}: {gateway.rate / baseline.rate:.2f}\n")
            if processes > 1:
                continue
            for shape in shapes:
                enqueue_gateway_tasks(total)
                sys.stdout.write(f"  {shape.label}, 1 API process:\n")
                _print_drain("gateway", asyncio.run(drive(url, process, shape, total)))


def _drain_old_designs(total: int, processes: int) -> dict[str, DrainReport]:
    """The old design as it was, and filling each lease up to the capacity, both served by
    ``processes`` uvicorn processes."""
    baselines: dict[str, DrainReport] = {}
    for label, fill in (("old design", "0"), ("old, filled", "1")):
        env = {"LEGACY_FILL_CAPACITY": fill, "GATEWAY_API_WORKERS": str(processes)}
        with api_process(LEGACY_COMMAND, extra_env=env) as (url, process):
            enqueue_legacy_tasks(WARM_UP_TASKS)
            asyncio.run(drive(url, process, LEGACY_SHAPE, WARM_UP_TASKS))
            enqueue_legacy_tasks(total)
            baselines[label] = asyncio.run(drive(url, process, LEGACY_SHAPE, total))
        _print_drain(label, baselines[label])
    return baselines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_dispatch")
    parser.add_argument("--tasks", type=int, default=TASKS)
    options = parser.parse_args(argv)
    if not 100 <= options.tasks <= 100_000:
        parser.error("--tasks must be 100-100000")
    with bench_servers():
        run(options.tasks)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
