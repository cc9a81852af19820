"""Idle fleet: N HTTP workers long-poll an empty platform against a real API process.

Reports the API process's CPU seconds per wall second and requests/s while the fleet idles,
then enqueues tasks one at a time and reports the wake-up latency: from the enqueue call
(ledger row + publish) to the task in a waiting worker's hands. Loopback only; bounded in
pollers and time. ``python -m bench.idle_fleet --pollers 1000 --idle-s 20`` runs it alone
(on the servers of ``bench.environment``); ``python -m bench dispatch`` runs it with defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from dataclasses import dataclass, field

import httpx
import psutil

from bench.api_process import WORKER_TOKEN, api_process, cpu_seconds
from bench.environment import bench_servers

POLLERS = 1_000
IDLE_S = 20.0
ENQUEUES = 100
RAMP_S = 5.0  # pollers start spread over this, as a fleet does
SETTLE_MAX_S = 60.0
WAIT_S = 30
CAPACITY = 10
POLLERS_PER_CLIENT = 25


@dataclass
class Fleet:
    requests: int = 0
    errors: int = 0
    pending: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    is_stopping: bool = False


async def poll_forever(client: httpx.AsyncClient, fleet: Fleet, worker: int) -> None:
    await asyncio.sleep(random.uniform(0, RAMP_S))
    headers = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": f"idle-{worker:05d}"}
    wait: float = random.uniform(1, WAIT_S)  # first waits spread, as a running fleet's are
    while not fleet.is_stopping:
        params = {"platforms": "demo", "capacity": CAPACITY, "wait": wait}
        try:
            response = await client.get("/internal/work", params=params, headers=headers)
        except httpx.HTTPError:
            fleet.errors += 1
            await asyncio.sleep(1)
            continue
        arrived_at = time.perf_counter()
        fleet.requests += 1
        wait = WAIT_S
        if response.status_code != 200:
            fleet.errors += 1
            await asyncio.sleep(1)
            continue
        for task in response.json()["tasks"]:
            future = fleet.pending.pop(task["target"]["parcel_id"], None)
            if future is not None and not future.done():
                future.set_result(arrived_at)


async def settle(process: psutil.Process) -> None:
    """Let the fleet's arrival (each new worker id is claimed once) pass: wait until the API
    spends under a fifth of a core for two seconds in a row, or SETTLE_MAX_S."""
    quiet_since, deadline = None, time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        before = cpu_seconds([process])
        await asyncio.sleep(1)
        if cpu_seconds([process]) - before < 0.2:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 1:
                return
        else:
            quiet_since = None
    _line(f"(the API was still busy after {SETTLE_MAX_S:.0f} s of settling)")


def _own_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure_idle(process: psutil.Process, fleet: Fleet, idle_s: float) -> None:
    me = psutil.Process()
    cpu_before, requests_before = cpu_seconds([process]), fleet.requests
    my_cpu_before = _own_cpu(me)
    started = time.perf_counter()
    await asyncio.sleep(idle_s)
    wall = time.perf_counter() - started
    cpu = cpu_seconds([process]) - cpu_before
    my_cpu = _own_cpu(me) - my_cpu_before
    rate = (fleet.requests - requests_before) / wall
    _line(f"idle: API CPU {cpu / wall:.3f} s per wall s ({cpu:.2f} s in {wall:.1f} s)")
    _line(f"idle: {rate:.1f} requests/s reached the API; errors so far {fleet.errors}")
    _line(f"idle: the bench's own CPU {my_cpu / wall:.3f} s per wall s (the pollers)")


async def measure_wakeups(fleet: Fleet, count: int) -> None:
    from services.dispatch.broker_client import enqueue_and_publish
    from services.dispatch.enqueue import EnqueueRequest

    latencies: list[float] = []
    enqueue_calls: list[float] = []
    loop = asyncio.get_running_loop()
    run = secrets.token_hex(3)
    for n in range(count):
        parcel_id = f"WAKE-{run}-{n:04d}"
        future: asyncio.Future[float] = loop.create_future()
        fleet.pending[parcel_id] = future
        request = EnqueueRequest("demo", "FL", "dixie", parcel_id)
        enqueued_at = time.perf_counter()
        await asyncio.to_thread(enqueue_and_publish, [request])
        enqueue_calls.append(time.perf_counter() - enqueued_at)
        arrived_at = await asyncio.wait_for(future, timeout=WAIT_S * 2)
        latencies.append(arrived_at - enqueued_at)
        await asyncio.sleep(0.05)
    _line(f"wake-up, enqueue -> task in a waiting worker's hands ({count}): {_spread(latencies)}")
    _line(f"of which the enqueue call (ledger row, publish, announce): {_spread(enqueue_calls)}")


def _spread(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p50, p99 = ordered[len(ordered) // 2], ordered[max(int(len(ordered) * 0.99) - 1, 0)]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


async def drive_fleet(url: str, process: psutil.Process, pollers: int, idle_s: float) -> None:
    fleet = Fleet()
    # httpx's pool does work in proportion to its connections on every request: many small
    # clients keep the pollers' own CPU from drowning what is measured.
    limits = httpx.Limits(max_connections=POLLERS_PER_CLIENT + 1)
    timeout = httpx.Timeout(WAIT_S + 30)
    clients = [
        httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)
        for _ in range(0, pollers, POLLERS_PER_CLIENT)
    ]
    try:
        workers = [
            asyncio.create_task(poll_forever(clients[n // POLLERS_PER_CLIENT], fleet, n))
            for n in range(pollers)
        ]
        await asyncio.sleep(RAMP_S)
        await settle(process)
        await measure_idle(process, fleet, idle_s)
        await measure_wakeups(fleet, ENQUEUES)
        fleet.is_stopping = True
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def run(pollers: int = POLLERS, idle_s: float = IDLE_S) -> None:
    _line(f"idle fleet: {pollers} long-pollers (capacity {CAPACITY}, wait {WAIT_S}), {idle_s} s")
    with api_process() as (url, process):
        asyncio.run(drive_fleet(url, process, pollers, idle_s))


def _line(text: str) -> None:
    sys.stdout.write(f"  {text}\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_fleet")
    parser.add_argument("--pollers", type=int, default=POLLERS)
    parser.add_argument("--idle-s", type=float, default=IDLE_S)
    options = parser.parse_args(argv)
    if not 1 <= options.pollers <= 5_000 or not 1 <= options.idle_s <= 300:
        parser.error("--pollers must be 1-5000 and --idle-s 1-300")
    with bench_servers():
        run(options.pollers, options.idle_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
