"""What the drill proves, read from the ledger, the parcels and ``ingest_rejects`` at the end.

The drill's parcel ids say what each task must end as: ``FAIL-`` (a site that keeps refusing:
dead after its retries), ``BROKEN-`` (a changed page: dead at once), ``POISON-`` (a result the
database refuses: succeeded, with its result in ``ingest_rejects``), anything else (a parcel:
succeeded with its snapshot, or dead with the reason if faults used up its attempts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, text

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

# Reasons a fault gives an attempt (the gateway's own): a task may die of these alone when
# the drill kills its runs often enough, never of another reason that is not its own.
FAULT_REASONS = ("lease_expired", "worker_lost", "worker_stale", "timeout")
_OWN_REASON = {"failing": "platform_down", "broken": "format_changed"}

_OUTCOMES = text(f"""
SELECT kind, status, reason, has_snapshot, has_reject, has_parcel, faults_only, own_reason,
       count(*) AS tasks
FROM (
  SELECT {_KIND_SQL} AS kind, t.status, coalesce(t.last_error_reason, '') AS reason,
         EXISTS (SELECT 1 FROM parcel_snapshots s WHERE s.task_id = t.id) AS has_snapshot,
         EXISTS (SELECT 1 FROM ingest_rejects r WHERE r.task_id = t.id) AS has_reject,
         EXISTS (SELECT 1 FROM parcels p WHERE p.state = t.state AND p.county = t.county
                 AND p.parcel_key = t.parcel_key) AS has_parcel,
         coalesce((SELECT bool_and(e ->> 'reason' IN :fault_reasons)
                   FROM jsonb_array_elements(t.error_history) AS e), true) AS faults_only,
         EXISTS (SELECT 1 FROM jsonb_array_elements(t.error_history) AS e
                 WHERE e ->> 'reason' IN ('platform_down', 'format_changed')
                   AND e ->> 'reason' = CASE WHEN t.parcel_id LIKE 'FAIL-%' THEN 'platform_down'
                                             ELSE 'format_changed' END) AS own_reason
  FROM scrape_tasks t
) AS outcome
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
""").bindparams(bindparam("fault_reasons", FAULT_REASONS, expanding=True))

_FAILED_ATTEMPTS = text("""
SELECT e ->> 'reason' AS reason, count(*) FROM scrape_tasks t,
       jsonb_array_elements(t.error_history) AS e
GROUP BY 1 ORDER BY 2 DESC
""")

# A task scraped twice: a lost run's result arrived after its retry had started. Two scrapes,
# both kept as history; not a loss, shown for what it is.
_SCRAPED_TWICE = text("""
SELECT count(*) FROM (SELECT 1 FROM parcel_snapshots WHERE task_id IS NOT NULL
                      GROUP BY task_id HAVING count(*) > 1) AS twice
""")
# At most this share of the tasks may be parcels dead of faults alone (attempts used up).
MAX_PARCELS_DEAD_SHARE = 0.01


@dataclass
class DrillFindings:
    enqueued: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    failed_attempts_by_reason: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each one a loss or a wrong outcome
    tasks_scraped_twice: int = 0
    poison_rejected: int = 0
    parcels_dead_under_faults: int = 0
    outbox_left: int = 0  # accepted result messages never written

    @property
    def is_clean(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Outcome:
    kind: str
    status: str
    reason: str
    has_snapshot: bool
    has_reject: bool
    has_parcel: bool
    faults_only: bool  # every failed attempt was a fault's
    own_reason: bool  # a failing task failed of its own reason at least once


# Tasks not finished; succeeded tasks whose result is not written yet (an HTTP worker
# completes its task once the gateway has accepted, queued, the result); accepted result
# messages not written yet (the outbox).
_NOT_DONE = text("""
SELECT count(*) FILTER (WHERE t.status NOT IN ('succeeded', 'dead', 'cancelled')),
       count(*) FILTER (WHERE t.status = 'succeeded'
           AND NOT EXISTS (SELECT 1 FROM parcel_snapshots s WHERE s.task_id = t.id)
           AND NOT EXISTS (SELECT 1 FROM ingest_rejects r WHERE r.task_id = t.id)),
       (SELECT count(*) FROM result_outbox)
FROM scrape_tasks t
""")


def not_done(engine: Engine) -> tuple[int, int, int]:
    """(tasks not finished, succeeded tasks whose result is not written yet, accepted result
    messages not written yet)."""
    with engine.connect() as connection:
        unfinished, unwritten, outbox = connection.execute(_NOT_DONE).one()
    return int(unfinished), int(unwritten), int(outbox)


def check_outcomes(engine: Engine, *, enqueued: int) -> DrillFindings:
    findings = DrillFindings(enqueued=enqueued)
    with engine.connect() as connection:
        rows = connection.execute(_OUTCOMES).all()
        findings.failed_attempts_by_reason = {
            str(reason): int(count) for reason, count in connection.execute(_FAILED_ATTEMPTS)
        }
        findings.tasks_scraped_twice = int(connection.scalar(_SCRAPED_TWICE) or 0)
        findings.outbox_left = not_done(engine)[2]
    for *columns, tasks in rows:
        outcome = _Outcome(*columns)
        findings.by_status[outcome.status] = findings.by_status.get(outcome.status, 0) + tasks
        if outcome.status == "dead":
            key = outcome.reason or "?"
            findings.dead_by_reason[key] = findings.dead_by_reason.get(key, 0) + tasks
        for problem in _problems(outcome):
            findings.problems.append(f"{tasks} {outcome.kind} task(s) {outcome.status}: {problem}")
        if outcome.kind == "poison" and outcome.status == "succeeded" and outcome.has_reject:
            findings.poison_rejected += tasks
        if outcome.kind == "parcel" and outcome.status == "dead":
            findings.parcels_dead_under_faults += tasks
    _check_totals(findings)
    return findings


def _check_totals(findings: DrillFindings) -> None:
    enqueued = findings.enqueued
    total = sum(findings.by_status.values())
    finished = sum(findings.by_status.get(status, 0) for status in TERMINAL)
    if total != enqueued:
        findings.problems.append(f"the ledger holds {total} tasks, {enqueued} were enqueued")
    if finished != enqueued:
        findings.problems.append(
            f"balance broken: enqueued {enqueued} != succeeded + dead + cancelled {finished}"
        )
    if findings.outbox_left:
        findings.problems.append(f"{findings.outbox_left} accepted result message(s) unwritten")
    if findings.parcels_dead_under_faults > max(5, MAX_PARCELS_DEAD_SHARE * total):
        findings.problems.append(
            f"{findings.parcels_dead_under_faults} parcel tasks used up their attempts under "
            f"faults (more than {MAX_PARCELS_DEAD_SHARE:.0%} of the tasks): recovery is failing"
        )


_EXPECTED_STATUS = {
    "parcel": ("succeeded", "dead"),
    "failing": ("dead",),
    "broken": ("dead",),
    "poison": ("succeeded",),
}


def _problems(outcome: _Outcome) -> list[str]:
    if outcome.status not in TERMINAL:
        return ["never finished"]
    if outcome.status == "dead" and not outcome.reason:
        return ["dead without a reason"]
    expected = _EXPECTED_STATUS[outcome.kind]
    if outcome.status not in expected:
        return [f"expected {' or '.join(expected)}"]
    if outcome.status == "dead":
        return _dead_problems(outcome)
    if outcome.kind == "parcel" and not (outcome.has_snapshot and outcome.has_parcel):
        return ["succeeded, but its result was never written"]
    if outcome.kind == "poison" and not outcome.has_reject:
        return ["succeeded, but its result is in neither parcels nor ingest_rejects"]
    if outcome.kind == "poison" and outcome.has_parcel:
        return ["the database refuses this parcel, yet a parcel row exists"]
    return []


def _dead_problems(outcome: _Outcome) -> list[str]:
    if outcome.kind == "parcel" and not outcome.faults_only:
        return [f"dead of {outcome.reason!r}, which no fault explains"]
    if outcome.kind in _OWN_REASON and not (outcome.own_reason or outcome.faults_only):
        return [f"dead, never of its own reason ({_OWN_REASON[outcome.kind]})"]
    return []
