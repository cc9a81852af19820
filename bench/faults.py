"""``python -m bench faults``: the fault drill. Everything fails while a mixed fleet drains a
few thousand tasks; then the ledger, the parcels and ``ingest_rejects`` must show that
nothing was lost.

The drill runs on servers of its own (``bench.drill_servers``) and a fleet of real processes
(``bench.drill_fleet``): Celery scrape nodes, a service node (ingest, maintenance), beat, the
API and reference HTTP workers, over ``demo``-scraper platforms with some scrapes failing on
purpose (retryable and not) and some results that the database refuses (poison). While the
fleet works, the drill SIGKILLs whole Celery nodes, pool children, HTTP workers and the service
node every few seconds (each is started again, as a supervisor would), kills Redis and starts
it again from its append-only file, crashes PostgreSQL for 10 s, and in the RabbitMQ variant
kills RabbitMQ and starts it again. It then waits for the drain and checks the outcome of
every task (``bench.drill_checks``), prints a summary and exits non-zero on any loss.

    python -m bench faults                 # the full drill: over 5,000 tasks, Redis broker
    python -m bench faults --broker rabbitmq
    python -m bench faults --short         # over 1,000 tasks, every fault kind once (CI)
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from bench.drill_checks import POISON_PREFIX, POISON_TRIGGER_SQL, check_outcomes, not_done
from bench.drill_faults import FaultLog, FaultSchedule, fault_kinds, inflict_faults
from bench.drill_fleet import REPO_ROOT, Fleet
from bench.drill_scrapers import DRILL_PLATFORMS
from bench.drill_servers import DrillServers, rabbitmq_is_installed

PARCEL_IDS = REPO_ROOT.parent / "shared" / "data" / "fl_dixie_parcel_ids.txt"


@dataclass(frozen=True)
class DrillPlan:
    parcels: int  # tasks that should become parcels
    each_special: int  # FAIL-, BROKEN- and POISON- tasks, this many of each
    scrape_nodes: int
    http_workers: int
    scrape_delay_s: float  # the demo scraper's pretend page load: paces the drain
    kill_every_s: float
    drain_timeout_s: float = 240.0

    @property
    def tasks(self) -> int:
        return self.parcels + 3 * self.each_special


FULL = DrillPlan(parcels=5000, each_special=50, scrape_nodes=3, http_workers=3,
                 scrape_delay_s=0.25, kill_every_s=3.0)  # fmt: skip
SHORT = DrillPlan(parcels=1000, each_special=15, scrape_nodes=2, http_workers=2,
                  scrape_delay_s=0.25, kill_every_s=3.0)  # fmt: skip


@dataclass
class DrillReport:
    broker: str
    plan: DrillPlan
    faults: dict[str, int]
    drain_after_last_fault_s: float | None
    total_s: float
    duplicates_dropped: dict[str, int]
    exited_on_their_own: list[str]
    findings: dict[str, object]
    problems: list[str]

    @property
    def is_clean(self) -> bool:
        return not self.problems


def run_drill(plan: DrillPlan, broker: str, work_dir: Path, seed: int) -> DrillReport:
    rng = random.Random(seed)
    servers = DrillServers(work_dir, broker)
    fleet: Fleet | None = None
    try:
        env = servers.start()
        engine = _engine(env["GATEWAY_POSTGRES_URL"])
        _prepare_database(env, engine)
        fleet = _start_fleet(env, plan, work_dir)
        csv_path = _write_tasks(work_dir / "tasks.csv", plan, rng)
        faults = FaultLog()
        _run(["-m", "cli", "enqueue", str(csv_path)], env)
        print(f"enqueued {plan.tasks} tasks over {', '.join(DRILL_PLATFORMS)}", flush=True)
        inflict_faults(FaultSchedule(plan.tasks, plan.kill_every_s), fleet, servers, engine,
                       faults, rng)  # fmt: skip
        drain_s = _wait_for_drain(engine, fleet, faults, plan.drain_timeout_s)
        findings = check_outcomes(engine, enqueued=plan.tasks)
        problems = list(findings.problems)
        missing = [kind for kind in fault_kinds(servers) if not faults.counts()[kind]]
        problems += [f"fault kind {kind!r} never happened" for kind in missing]
        return DrillReport(
            broker=broker,
            plan=plan,
            faults=dict(faults.counts()),
            drain_after_last_fault_s=drain_s,
            total_s=time.monotonic() - faults.started,
            duplicates_dropped=servers.duplicates_dropped(),
            exited_on_their_own=faults.exits,
            findings={k: v for k, v in asdict(findings).items() if k != "problems"},
            problems=problems,
        )
    finally:
        if fleet is not None:
            fleet.stop()
        servers.stop()


def _engine(postgres_url: str) -> Engine:
    from sqlalchemy import create_engine

    from settings import to_sqlalchemy_url

    return create_engine(to_sqlalchemy_url(postgres_url), pool_pre_ping=True, pool_size=2)


def _prepare_database(env: dict[str, str], engine: Engine) -> None:
    from sqlalchemy import text

    _run(["-m", "alembic", "upgrade", "head"], env)
    for platform in DRILL_PLATFORMS[1:]:
        _run(["-m", "cli", "platforms", "add", platform], env)
    with engine.begin() as connection:
        connection.execute(text(POISON_TRIGGER_SQL))


def _fleet_env(env: dict[str, str], plan: DrillPlan) -> tuple[dict[str, str], str]:
    worker_token = secrets.token_urlsafe(24)
    return {
        **env,
        "GATEWAY_WORKER_TOKENS": worker_token,
        "GATEWAY_ADMIN_TOKENS": secrets.token_urlsafe(24),
        "GATEWAY_LOG_JSON": "false",
        "GATEWAY_DEMO_SCRAPE_DELAY_S": str(plan.scrape_delay_s),
        # Recovery in seconds, not minutes: the periodic jobs (re-publish, reaper) every 2 s,
        # leases and run leases of 15 s, a returned run's result awaited 25 s, heartbeats
        # stale after 15 s, retries after 1 s.
        "GATEWAY_DISPATCH_JOB_INTERVAL_S": "2",
        "GATEWAY_CELERY_RUN_LEASE_S": "15",
        "GATEWAY_CELERY_RUN_HANDOFF_LEASE_S": "25",
        "GATEWAY_LEASE_TIMEOUT_S": "15",
        "GATEWAY_HEARTBEAT_STALE_S": "15",
        "GATEWAY_RETRY_BACKOFF_BASE_S": "1",
        "GATEWAY_MAX_RETRIES": "5",
        "GATEWAY_UNPUBLISHED_GRACE_S": "2",
        "GATEWAY_VANISHED_GRACE_S": "20",
        # An accepted result the broker lost is sent again from the outbox after 20 s; the
        # grace must exceed the ingest's wait for a database that is down.
        "GATEWAY_RESULT_OUTBOX_GRACE_S": "20",
        "GATEWAY_INGEST_OUTAGE_WAIT_S": "8",
        # Redis hands back a dead consumer's unacked messages after the visibility timeout,
        # which must exceed the task time limit (demo scrapes take well under a second).
        "GATEWAY_TASK_TIME_LIMIT_S": "10",
        "GATEWAY_VISIBILITY_TIMEOUT_S": "75",
    }, worker_token


def _start_fleet(env: dict[str, str], plan: DrillPlan, work_dir: Path) -> Fleet:
    from services.queues import scrape_queue_names

    fleet_env, worker_token = _fleet_env(env, plan)
    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(fleet_env, worker_token, log_dir, scrape_queue_names(list(DRILL_PLATFORMS)),
                  list(DRILL_PLATFORMS))  # fmt: skip
    fleet.start_api()
    fleet.start_service_node()
    fleet.start_beat()
    for _ in range(plan.scrape_nodes):
        fleet.start_scrape_node()
    fleet.wait_until_ready()
    for _ in range(plan.http_workers):
        fleet.start_http_worker()
    print(f"fleet up: {len(fleet.processes)} processes, logs in {log_dir}", flush=True)
    return fleet


def _write_tasks(path: Path, plan: DrillPlan, rng: random.Random) -> Path:
    """Real parcel ids (Dixie County, FL), spread over the platforms and priorities."""
    ids = [line.strip() for line in PARCEL_IDS.read_text().splitlines() if line.strip()]
    ids = list(dict.fromkeys(ids))
    if len(ids) < plan.parcels:
        raise SystemExit(f"{PARCEL_IDS} holds {len(ids)} ids; the plan needs {plan.parcels}")
    parcel_ids = rng.sample(ids, plan.parcels)
    for prefix in ("FAIL-", "BROKEN-", POISON_PREFIX):
        parcel_ids += [f"{prefix}{n:04d}" for n in range(plan.each_special)]
    rng.shuffle(parcel_ids)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["platform", "state", "county", "parcel_id", "priority"])
        for n, parcel_id in enumerate(parcel_ids):
            platform = DRILL_PLATFORMS[n % len(DRILL_PLATFORMS)]
            writer.writerow([platform, "FL", "dixie", parcel_id, 1 + n % 4])
    return path


def _wait_for_drain(
    engine: Engine, fleet: Fleet, faults: FaultLog, timeout_s: float
) -> float | None:
    """Seconds from the end of the last fault until every task finished and every accepted
    result was written (or recorded as rejected); None: not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while time.monotonic() < deadline:
        try:
            unfinished, unwritten, outbox = not_done(engine)
        except OperationalError:
            unfinished = unwritten = outbox = -1
        if unfinished == unwritten == outbox == 0:
            return time.monotonic() - faults.last_fault_end
        faults.note_revivals(fleet)
        if time.monotonic() - last_report >= 10:
            print(f"  draining: {unfinished} task(s) not finished, {unwritten} result(s) of "
                  f"finished tasks and {outbox} accepted message(s) not written yet",
                  flush=True)  # fmt: skip
            last_report = time.monotonic()
        time.sleep(0.25)
    return None


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def print_report(report: DrillReport) -> None:
    findings = report.findings
    drain = report.drain_after_last_fault_s
    rows = [
        ("broker", report.broker),
        ("tasks enqueued", f"{findings['enqueued']:,}"),
        ("faults", ", ".join(f"{kind} {n}" for kind, n in sorted(report.faults.items()))),
        ("tasks by status", _pairs(findings["by_status"])),
        ("dead by reason", _pairs(findings["dead_by_reason"])),
        ("failed attempts by reason", _pairs(findings["failed_attempts_by_reason"])),
        ("parcel tasks dead under faults", str(findings["parcels_dead_under_faults"])),
        ("poison results kept in ingest_rejects", str(findings["poison_rejected"])),
        ("tasks scraped twice (late result of a lost run)", str(findings["tasks_scraped_twice"])),
        ("duplicate deliveries dropped", _pairs(report.duplicates_dropped) or "0"),
        ("processes that exited on their own", str(len(report.exited_on_their_own))),
        ("drain after the last fault", f"{drain:.1f} s" if drain is not None else "never"),
        ("whole drill", f"{report.total_s:.0f} s"),
        ("lost or wrong", "none" if report.is_clean else f"{len(report.problems)} problem(s)"),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for line in report.exited_on_their_own:
        print(f"  exited: {line}")
    for problem in report.problems:
        print(f"  PROBLEM: {problem}")


def _pairs(values: object) -> str:
    assert isinstance(values, dict)
    return ", ".join(f"{key} {count:,}" for key, count in sorted(values.items()))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description="The fault drill")
    parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis")
    parser.add_argument("--short", action="store_true", help="over 1,000 tasks (the CI drill)")
    parser.add_argument("--seed", type=int, default=None, help="repeat a drill's choices")
    parser.add_argument("--work-dir", type=Path, default=None, help="servers' data and logs")
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    args = parser.parse_args(argv)
    if args.broker == "rabbitmq" and not rabbitmq_is_installed():
        parser.error("the RabbitMQ variant needs rabbitmq-server installed (it starts its own)")
    plan = SHORT if args.short else FULL
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="taxlien-drill-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    # Stopped from outside, the drill still stops its fleet and servers (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"fault drill: {plan.tasks:,} tasks, {args.broker} broker, seed {seed}, in {work_dir}")
    report = run_drill(plan, args.broker, work_dir, seed)
    print_report(report)
    if args.json is not None:
        summary = {**asdict(report), "plan": asdict(plan), "is_clean": report.is_clean}
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if report.is_clean else 1
