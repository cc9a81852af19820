"""Politeness at the start of a task: fit the fleet's start budget or wait in the ledger.

A task over budget is put off, not failed: ``queued`` → ``retry_wait`` with ``due_at`` at
its scope's next slot, its attempt count untouched and no reason recorded; the periodic
re-publisher sends it again when due. Its message is acknowledged by the caller after the
commit, so it holds no worker and no queue place meanwhile, and tasks of other platforms and
counties behind it keep flowing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus
from services.cache_redis import cache_redis
from services.dispatch.failures import FailureReason
from services.dispatch.rate_limits import Scope, ScopeLimit, current_limits, list_rate_limits
from services.dispatch.start_budget import EffectiveRate, StartBudget
from services.errors import ServiceUnavailable
from settings import get_settings

logger = logging.getLogger(__name__)
MAX_REPORTED_PAUSE_S = 3600.0
PUSHBACK_REASONS = frozenset({FailureReason.RATE_LIMITED.value, FailureReason.BLOCKED.value})


def start_budget() -> StartBudget:
    return _budget_with_cooldown(get_settings().rate_limit_cooldown_s)


@lru_cache(maxsize=4)
def _budget_with_cooldown(cooldown_s: float) -> StartBudget:
    return StartBudget(cache_redis(), cooldown_s=cooldown_s)


def ration_starts(
    session: Session, task_ids: Sequence[uuid.UUID]
) -> tuple[list[uuid.UUID], dict[uuid.UUID, float]]:
    """Split ids, in their order, into those whose start fits the budget now (their slots
    taken) and those put off, with the seconds until their scope's next slot. Ids not
    queued (duplicates) pass through untouched: the claim skips them."""
    limits = current_limits(session)
    if not limits.per_minute or not task_ids:
        return list(task_ids), {}
    rows = session.execute(
        select(ScrapeTask.id, ScrapeTask.platform, ScrapeTask.county).where(
            ScrapeTask.id.in_(list(task_ids)), ScrapeTask.status == TaskStatus.QUEUED.value
        )
    )
    places = {task_id: (platform, county) for task_id, platform, county in rows}
    budget = start_budget()
    allowed: list[uuid.UUID] = []
    deferred: dict[uuid.UUID, float] = {}
    refused: dict[tuple[ScopeLimit, ...], float] = {}  # no second ask for a refused scope
    for task_id in task_ids:
        place = places.get(task_id)
        scopes = tuple(limits.limits_for(*place)) if place else ()
        wait_s = refused.get(scopes) or budget.take_start(scopes)
        if wait_s > 0:
            refused[scopes] = wait_s
            deferred[task_id] = wait_s
        else:
            allowed.append(task_id)
    return allowed, deferred


def defer_starts(session: Session, deferrals: Mapping[uuid.UUID, float], *, now: datetime) -> int:
    """Put off queued tasks until their slot: ``retry_wait`` with ``due_at``, the attempt
    count as it was (no attempt started). Returns how many were put off."""
    by_wait: dict[float, list[uuid.UUID]] = {}
    for task_id, wait_s in deferrals.items():
        by_wait.setdefault(wait_s, []).append(task_id)
    moved = 0
    for wait_s, ids in by_wait.items():
        result = session.execute(
            update(ScrapeTask)
            .where(ScrapeTask.id.in_(ids), ScrapeTask.status == TaskStatus.QUEUED.value)
            .values(
                status=TaskStatus.RETRY_WAIT.value,
                due_at=now + timedelta(seconds=wait_s),
                published_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        moved += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return moved


def hold_for_budget(
    session: Session, task_id: uuid.UUID, *, platform: str, county: str, now: datetime
) -> float:
    """A Celery run's start (``platform`` and ``county`` from its envelope): 0 to go ahead
    (its slot taken), else the task was put off and this is the wait. A row not queued is
    left to the claim (a duplicate, or a lost run to take over: a retry, not a new start)."""
    limits = current_limits(session).limits_for(platform, county)
    if not limits:
        return 0.0
    is_queued = session.execute(
        select(ScrapeTask.id)
        .where(ScrapeTask.id == task_id, ScrapeTask.status == TaskStatus.QUEUED.value)
        .with_for_update()
    ).first()
    if is_queued is None:
        return 0.0
    wait_s = start_budget().take_start(limits)
    if wait_s > 0:
        defer_starts(session, {task_id: wait_s}, now=now)
    return wait_s


def note_pushback(
    session: Session, task: ScrapeTask, *, reason: str, retry_after_s: float | None
) -> None:
    """A site refused the worker (or told it to come back later): lower the rate of the
    task's most specific limited scope and pause it for the Retry-After, if one came."""
    if reason not in PUSHBACK_REASONS and not retry_after_s:
        return
    limit = current_limits(session).pushback_scope(task.platform, task.county)
    if limit is None:
        return  # no configured rate to lower
    # One report pauses a whole scope for every worker: a worker's word is capped (a bad
    # Retry-After parse, or a careless credential, must not stop a platform for a day).
    pause_s = min(retry_after_s or 0.0, MAX_REPORTED_PAUSE_S)
    try:
        level = start_budget().report_pushback(limit, pause_s=pause_s)
    except RedisError as exc:
        logger.warning("pushback on %s not recorded: %s", limit.scope.label, exc)
        return
    logger.info(
        "%s pushed back (%s, by %s): rate cut to 1/%d of %d/min, paused %.0f s",
        limit.scope.label,
        reason,
        task.leased_by,
        2**level,
        limit.per_minute,
        pause_s,
    )


@dataclass(frozen=True)
class LimitInForce:
    """A configured limit and the rate it is held to now (lowered after pushback)."""

    rate: EffectiveRate
    updated_at: datetime


def read_limits_in_force(session: Session) -> list[LimitInForce]:
    """Every configured limit with its effective rate; 503 if the budget cannot be read."""
    rows = list_rate_limits(session)
    limits = [ScopeLimit(Scope(row.platform, row.county), row.per_minute) for row in rows]
    try:
        rates = start_budget().read_rates(limits)
    except RedisError as exc:
        raise ServiceUnavailable("the start budget (cache Redis) is unreachable") from exc
    return [LimitInForce(rate, row.updated_at) for rate, row in zip(rates, rows, strict=True)]
