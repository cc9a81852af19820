"""Marking ledger tasks as succeeded when their results are ingested."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES_SQL, TaskStatus
from services.dispatch.outcome_metrics import (
    FinishedAttempt,
    TaskOutcome,
    note_attempts_finished,
)


class TaskResult(NamedTuple):
    """The task a result names, and the parcel the result is for (normalised identity)."""

    task_id: uuid.UUID
    platform: str
    state: str
    county: str
    parcel_key: str


# A result finishes its task only when it is for that task's parcel: a worker that mixes up
# ids must not finish another parcel's task (that parcel would then never be scraped).
_MARK_SUCCEEDED = text(f"""
UPDATE scrape_tasks t
SET status = '{TaskStatus.SUCCEEDED.value}', finished_at = now(),
    lease_expires_at = NULL, due_at = NULL, updated_at = now()
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:platforms AS text[]), CAST(:states AS text[]),
    CAST(:counties AS text[]), CAST(:parcel_keys AS text[])
) AS v(id, platform, state, county, parcel_key)
WHERE t.id = v.id AND t.platform = v.platform AND t.state = v.state
    AND t.county = v.county AND t.parcel_key = v.parcel_key
    AND t.status IN ({ACTIVE_STATUSES_SQL})
RETURNING t.platform,
    EXTRACT(EPOCH FROM t.started_at - coalesce(t.published_at, t.created_at)) AS wait_s,
    EXTRACT(EPOCH FROM t.finished_at - t.started_at) AS run_s
""")


def mark_tasks_succeeded(session: Session, results: Collection[TaskResult]) -> int:
    """Active tasks named by ``results`` become ``succeeded``; finished ones are left alone.

    A result whose platform or parcel differs from its task's changes nothing. Idempotent:
    a redelivered result finds its task already succeeded and changes nothing.
    Returns how many rows changed.
    """
    if not results:
        return 0
    distinct = list(set(results))
    rows = session.execute(
        _MARK_SUCCEEDED,
        {
            "ids": [str(r.task_id) for r in distinct],
            "platforms": [r.platform for r in distinct],
            "states": [r.state for r in distinct],
            "counties": [r.county for r in distinct],
            "parcel_keys": [r.parcel_key for r in distinct],
        },
    ).all()
    note_attempts_finished(session, (_succeeded_attempt(*row) for row in rows))
    return len(rows)


def _succeeded_attempt(platform: str, wait_s: float | None, run_s: float | None) -> FinishedAttempt:
    return FinishedAttempt(
        platform,
        TaskOutcome.SUCCEEDED,
        None if wait_s is None else float(wait_s),
        None if run_s is None else float(run_s),
    )
