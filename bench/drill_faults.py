"""What the drill breaks, and when: SIGKILLs every few seconds (whole Celery nodes, pool
children, HTTP workers, the service node, the API, beat), and once each a Redis kill, a
PostgreSQL crash and, in the RabbitMQ variant, a RabbitMQ kill. The one-off faults are placed
by progress (a share of the tasks finished), so each lands mid-drain whatever the machine's
pace."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from bench.drill_checks import not_done
from bench.drill_fleet import Fleet
from bench.drill_servers import DrillServers

# The API too: one killed between its outbox commit and its publish leaves what only the
# outbox brings back. Beat: its jobs (re-publish, reaper) must resume with a new one.
KILL_KINDS = ("scrape_node", "pool_children", "http_worker", "service_node", "api", "beat")
POSTGRES_OUTAGE_S = 10.0
REDIS_DOWN_S = 3.0
RABBITMQ_DOWN_S = 3.0


@dataclass(frozen=True)
class FaultSchedule:
    tasks: int
    kill_every_s: float
    # The Redis kill, the PostgreSQL crash and the RabbitMQ kill, at these shares finished.
    one_off_progress: tuple[float, float, float] = (0.15, 0.35, 0.55)
    kills_until_progress: float = 0.8
    # A drill whose fleet stops making progress ends its faults here; the checks then show
    # what never finished.
    deadline_s: float = 300.0


@dataclass
class FaultLog:
    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (at_s, kind, detail)
    exits: list[str] = field(default_factory=list)  # processes that exited on their own
    last_fault_end: float = 0.0

    def note(self, kind: str, detail: str) -> None:
        at = time.monotonic() - self.started
        self.events.append((at, kind, detail))
        self.last_fault_end = time.monotonic()
        print(f"  {at:6.1f}s  {kind:<17} {detail}", flush=True)

    def end(self, kind: str, detail: str) -> None:
        """The end of a fault already noted (a server started again)."""
        self.last_fault_end = time.monotonic()
        print(f"  {self.last_fault_end - self.started:6.1f}s  {kind:<17} {detail}", flush=True)

    def note_revivals(self, fleet: Fleet) -> None:
        """Processes that died of a fault without being its target, started again."""
        for dead, replacement in fleet.revive_exited():
            code = dead.process.returncode
            self.exits.append(f"{dead.name} exited ({code}); {replacement.name} started")
            print(f"  {time.monotonic() - self.started:6.1f}s  {'exited':<17} {self.exits[-1]}")

    def counts(self) -> Counter[str]:
        return Counter(kind for _, kind, _ in self.events)


def fault_kinds(servers: DrillServers) -> list[str]:
    kinds = [*KILL_KINDS, "redis_restart", "postgres_outage"]
    return kinds + (["rabbitmq_restart"] if servers.rabbitmq is not None else [])


def inflict_faults(
    schedule: FaultSchedule,
    fleet: Fleet,
    servers: DrillServers,
    engine: Engine,
    faults: FaultLog,
    rng: random.Random,
) -> None:
    """Break things until the one-off faults are done and most tasks finished."""
    redis, postgres = servers.redis, servers.postgres
    one_offs: list[tuple[float, Callable[[], None]]] = [
        (schedule.one_off_progress[0], lambda: _outage(
            faults, "redis_restart", stop=redis.kill, start=redis.restart, down_s=REDIS_DOWN_S,
            stopped="Redis killed (SIGKILL)",
            started="Redis started again from its append-only file")),
        (schedule.one_off_progress[1], lambda: _outage(
            faults, "postgres_outage", stop=postgres.crash, start=postgres.restart,
            down_s=POSTGRES_OUTAGE_S,
            stopped=f"PostgreSQL stopped (immediate) for {POSTGRES_OUTAGE_S:.0f}s",
            started="PostgreSQL started again")),
    ]  # fmt: skip
    if servers.rabbitmq is not None:
        rabbitmq = servers.rabbitmq
        one_offs.append((schedule.one_off_progress[2], lambda: _outage(
            faults, "rabbitmq_restart", stop=rabbitmq.kill, start=rabbitmq.restart,
            down_s=RABBITMQ_DOWN_S, stopped="RabbitMQ killed (SIGKILL)",
            started="RabbitMQ started again on its data")))  # fmt: skip
    kill_order = list(KILL_KINDS)
    rng.shuffle(kill_order)  # every kind once first, then at random
    next_kill = time.monotonic() + schedule.kill_every_s
    progress, last_report = 0.0, 0.0
    deadline = time.monotonic() + schedule.deadline_s
    # Until every kind was killed once, whatever the pace: a fast drain must not skip one.
    while one_offs or kill_order or progress < schedule.kills_until_progress:
        if time.monotonic() > deadline:
            print(f"  faults stopped after {schedule.deadline_s:.0f}s at {progress:.0%} done")
            return
        progress = _progress(engine, schedule.tasks, progress)
        if one_offs and progress >= one_offs[0][0]:
            one_offs.pop(0)[1]()
            continue
        if time.monotonic() >= next_kill:
            kind = kill_order.pop(0) if kill_order else rng.choice(KILL_KINDS)
            if not _kill(kind, fleet, faults, rng):
                kill_order.insert(0, kind)  # nothing of that kind runs now: try it next time
            next_kill = time.monotonic() + schedule.kill_every_s
        faults.note_revivals(fleet)
        if time.monotonic() - last_report >= 10:
            print(f"  progress: {progress:.0%} done", flush=True)
            last_report = time.monotonic()
        time.sleep(0.25)


def _progress(engine: Engine, total: int, last: float) -> float:
    try:
        return 1 - sum(not_done(engine)) / total
    except OperationalError:
        return last  # PostgreSQL is down: the drill did that


def _kill(kind: str, fleet: Fleet, faults: FaultLog, rng: random.Random) -> bool:
    """SIGKILL a process of ``kind``; False if there was none to kill."""
    if kind == "pool_children":
        node = fleet.pick("scrape_node", rng)
        killed = node.kill_children() if node is not None else 0
        if node is not None and killed:
            faults.note(kind, f"{killed} pool process(es) of {node.name}")
        return bool(killed)
    victim = fleet.pick(kind, rng)
    if victim is None:
        return False
    victim.kill()
    replacement = fleet.replace(victim)
    faults.note(kind, f"{victim.name} killed; {replacement.name} started")
    return True


def _outage(
    faults: FaultLog,
    kind: str,
    *,
    stop: Callable[[], None],
    start: Callable[[], None],
    down_s: float,
    stopped: str,
    started: str,
) -> None:
    """A server down for ``down_s`` (the outage itself), then started again."""
    stop()
    faults.note(kind, stopped)
    time.sleep(down_s)
    start()
    faults.end(kind, started)
