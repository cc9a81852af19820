"""What the drill proves, read from the ledger, the parcels and ``ingest_rejects`` at the end.

The drill's parcel ids say what each task must end as: ``FAIL-`` (a site that keeps refusing:
dead after its retries), ``BROKEN-`` (a changed page: dead at once), ``POISON-`` (a result the
database refuses: succeeded, with its result in ``ingest_rejects``), anything else (a parcel:
succeeded with its snapshot, or dead with the reason if faults used up its attempts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text

TERMINAL = ("succeeded", "dead", "cancelled")
POISON_PREFIX = "POISON-"
POISON_KEY_PREFIX = "POISON"  # the normalised parcel key drops the dash

# The drill's own database refuses these parcels, as a database refuses a poison row.
POISON_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION drill_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parcel_key LIKE '{POISON_KEY_PREFIX}%' THEN
    RAISE EXCEPTION 'drill: poison parcel %', NEW.parcel_key USING ERRCODE = '23514';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER drill_refuse_poison BEFORE INSERT OR UPDATE ON parcels
  FOR EACH ROW EXECUTE FUNCTION drill_refuse_poison();
"""

_KIND_SQL = f"""
CASE WHEN t.parcel_id LIKE 'FAIL-%' THEN 'failing'
     WHEN t.parcel_id LIKE 'BROKEN-%' THEN 'broken'
     WHEN t.parcel_id LIKE '{POISON_PREFIX}%' THEN 'poison'
     ELSE 'parcel' END
"""

_OUTCOMES = text(f"""
SELECT {_KIND_SQL} AS kind, t.status, coalesce(t.last_error_reason, '') AS reason,
       EXISTS (SELECT 1 FROM parcel_snapshots s WHERE s.task_id = t.id) AS has_snapshot,
       EXISTS (SELECT 1 FROM ingest_rejects r WHERE r.task_id = t.id) AS has_reject,
       EXISTS (SELECT 1 FROM parcels p WHERE p.state = t.state AND p.county = t.county
               AND p.parcel_key = t.parcel_key) AS has_parcel,
       count(*) AS tasks
FROM scrape_tasks t
GROUP BY 1, 2, 3, 4, 5, 6
""")

_FAILED_ATTEMPTS = text("""
SELECT e ->> 'reason' AS reason, count(*) FROM scrape_tasks t,
       jsonb_array_elements(t.error_history) AS e
GROUP BY 1 ORDER BY 2 DESC
""")

# One scrape written twice would give two snapshots with the same task and scrape time
# (the unique constraint on (parcel, platform, scraped_at) forbids it; this proves it held).
_WRITTEN_TWICE = text("""
SELECT count(*) FROM (SELECT 1 FROM parcel_snapshots WHERE task_id IS NOT NULL
                      GROUP BY task_id, scraped_at HAVING count(*) > 1) AS twice
""")
# A task scraped twice: a lost run's result arrived after its retry had started. Two scrapes,
# both kept as history; not a loss, shown for what it is.
_SCRAPED_TWICE = text("""
SELECT count(*) FROM (SELECT 1 FROM parcel_snapshots WHERE task_id IS NOT NULL
                      GROUP BY task_id HAVING count(*) > 1) AS twice
""")


@dataclass
class DrillFindings:
    enqueued: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    failed_attempts_by_reason: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each one a loss or a wrong outcome
    results_written_twice: int = 0
    tasks_scraped_twice: int = 0
    poison_rejected: int = 0
    parcels_dead_under_faults: int = 0

    @property
    def is_clean(self) -> bool:
        return not self.problems


# Tasks not finished, and succeeded tasks whose result is not written yet: an HTTP worker
# completes its task once the gateway has accepted (queued) the result, before the ingest.
_NOT_DONE = text("""
SELECT count(*) FILTER (WHERE t.status NOT IN ('succeeded', 'dead', 'cancelled')),
       count(*) FILTER (WHERE t.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM parcel_snapshots s WHERE s.task_id = t.id)
           AND NOT EXISTS (SELECT 1 FROM ingest_rejects r WHERE r.task_id = t.id))
FROM scrape_tasks t
""")


def not_done(engine: Engine) -> tuple[int, int]:
    """(tasks not finished, succeeded tasks whose result is not written yet)."""
    with engine.connect() as connection:
        unfinished, unwritten = connection.execute(_NOT_DONE).one()
    return int(unfinished), int(unwritten)


def check_outcomes(engine: Engine, *, enqueued: int) -> DrillFindings:
    findings = DrillFindings(enqueued=enqueued)
    with engine.connect() as connection:
        rows = connection.execute(_OUTCOMES).all()
        findings.failed_attempts_by_reason = {
            str(reason): int(count) for reason, count in connection.execute(_FAILED_ATTEMPTS)
        }
        findings.results_written_twice = int(connection.scalar(_WRITTEN_TWICE) or 0)
        findings.tasks_scraped_twice = int(connection.scalar(_SCRAPED_TWICE) or 0)
    for kind, status, reason, has_snapshot, has_reject, has_parcel, tasks in rows:
        findings.by_status[status] = findings.by_status.get(status, 0) + tasks
        if status == "dead":
            key = reason or "?"
            findings.dead_by_reason[key] = findings.dead_by_reason.get(key, 0) + tasks
        for problem in _problems(kind, status, reason, has_snapshot, has_reject, has_parcel):
            findings.problems.append(f"{tasks} {kind} task(s) {status}: {problem}")
        if kind == "poison" and status == "succeeded" and has_reject:
            findings.poison_rejected += tasks
        if kind == "parcel" and status == "dead":
            findings.parcels_dead_under_faults += tasks
    total = sum(findings.by_status.values())
    finished = sum(findings.by_status.get(status, 0) for status in TERMINAL)
    if total != enqueued:
        findings.problems.append(f"the ledger holds {total} tasks, {enqueued} were enqueued")
    if finished != enqueued:
        findings.problems.append(
            f"balance broken: enqueued {enqueued} != succeeded + dead + cancelled {finished}"
        )
    if findings.results_written_twice:
        findings.problems.append(f"{findings.results_written_twice} scrape(s) written twice")
    return findings


def _problems(
    kind: str, status: str, reason: str, has_snapshot: bool, has_reject: bool, has_parcel: bool
) -> list[str]:
    if status not in TERMINAL:
        return ["never finished"]
    if status == "dead" and not reason:
        return ["dead without a reason"]
    expected = {
        "parcel": ("succeeded", "dead"),
        "failing": ("dead",),
        "broken": ("dead",),
        "poison": ("succeeded",),
    }[kind]
    if status not in expected:
        return [f"expected {' or '.join(expected)}"]
    if status != "succeeded":
        return []
    if kind == "parcel" and not (has_snapshot and has_parcel):
        return ["succeeded, but its result was never written"]
    if kind == "poison" and not has_reject:
        return ["succeeded, but its result is in neither parcels nor ingest_rejects"]
    if kind == "poison" and has_parcel:
        return ["the database refuses this parcel, yet a parcel row exists"]
    return []
