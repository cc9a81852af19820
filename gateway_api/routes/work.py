"""``GET /internal/work``: lease tasks to an HTTP worker, with an optional long poll."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import bindparam, select

from db.models import Platform, Worker
from db.session import session_scope
from gateway_api import worker_examples
from gateway_api.api_docs import WORKER_ERRORS
from gateway_api.auth import WorkerDep
from gateway_api.client_disconnect import watch_disconnect
from gateway_api.schemas import Text
from gateway_api.timed_cache import TimedCache
from gateway_api.worker_examples import json_example
from services.dispatch.broker_client import lease_from_broker
from services.dispatch.envelopes import TASK_TYPE
from services.dispatch.lease_loop import DeferredStarts
from services.dispatch.leases import LeasedTask
from services.dispatch.long_poll import wait_for_work
from services.dispatch.work_requests import parse_capacity
from services.dispatch.work_waiters import WorkWaiters
from services.errors import InvalidInput
from settings import get_settings

router = APIRouter(prefix="/internal", tags=["workers"], responses=WORKER_ERRORS)
MAX_WAIT_S = 30.0
PLATFORM_STATES_MAX_AGE_S = 5.0
PlatformList = Annotated[Text, Field(max_length=2000)]  # a name, or a comma list of names


class WorkTarget(BaseModel):
    parcel_id: str
    state: str
    county: str
    url: str | None


class WorkTask(BaseModel):
    task_id: uuid.UUID
    type: str
    platform: str
    target: WorkTarget
    priority: int
    created_at: datetime
    attempt: int
    lease_expires_at: datetime
    lease_token: int
    proxy: None = Field(
        default=None, description="The original's proxy slot, always null: workers bring their own"
    )


class WorkOut(BaseModel):
    tasks: list[WorkTask]
    retry_after: int


def work_task(task: LeasedTask) -> WorkTask:
    return WorkTask(
        task_id=task.id,
        type=TASK_TYPE,
        platform=task.platform,
        target=WorkTarget(
            parcel_id=task.parcel_id, state=task.state, county=task.county, url=task.url
        ),
        priority=task.priority,
        created_at=task.created_at,
        attempt=task.attempt,
        lease_expires_at=task.lease_expires_at,
        lease_token=task.lease_token,
    )


def _split_platforms(raw: list[str]) -> list[str]:
    names: list[str] = []
    for value in raw:
        for name in value.split(","):
            cleaned = name.strip().lower()
            if cleaned and cleaned not in names:
                names.append(cleaned)
    return names


# Built once: it runs on every poll.
_PLATFORMS_AND_PAUSE = select(
    Platform.name,
    Platform.is_enabled,
    select(Worker.is_paused).where(Worker.worker_id == bindparam("worker_id")).scalar_subquery(),
)


def _prepare(worker_id: str, requested: list[str]) -> tuple[list[str], bool]:
    """The platforms to lease from and the pause flag, read fresh before every lease."""
    with session_scope() as session:  # one round trip
        rows = session.connection().execute(_PLATFORMS_AND_PAUSE, {"worker_id": worker_id}).all()
    enabled_by_name = {name: is_enabled for name, is_enabled, _ in rows}
    return _enabled(enabled_by_name, requested), bool(rows and rows[0][2])


def _enabled(enabled_by_name: dict[str, bool], requested: list[str]) -> list[str]:
    """None named means every enabled platform. A name not in the table is a 422; a disabled
    one is skipped, so one disabled platform does not stop a worker's work on the others."""
    unknown = [name for name in requested if name not in enabled_by_name]
    if unknown:
        raise InvalidInput(f"unknown platform(s): {', '.join(unknown)}")
    names = requested or sorted(enabled_by_name)
    return [name for name in names if enabled_by_name[name]]


def _read_platform_states() -> dict[str, bool]:
    with session_scope() as session:
        rows = session.execute(select(Platform.name, Platform.is_enabled))
        return {name: is_enabled for name, is_enabled in rows}


# Which platforms a long poll waits on: a few seconds old at most, so an idle fleet's polls
# on drained platforms cost no database round trip. Every lease still reads them fresh.
_platform_states = TimedCache(_read_platform_states, max_age_s=lambda: PLATFORM_STATES_MAX_AGE_S)


async def _platforms_to_wait_on(requested: list[str]) -> list[str]:
    states = _platform_states.peek()
    if states is None:
        states = await run_in_threadpool(_platform_states.get)
    if any(name not in states for name in requested):
        # A platform added since is not refused for the cache's age.
        states = await run_in_threadpool(_platform_states.refresh)
    return _enabled(states, requested)


async def get_work_waiters(request: Request) -> WorkWaiters:
    """The process's waiters, made by the app's lifespan (``gateway_api.app``)."""
    waiters: WorkWaiters = request.app.state.work_waiters
    return waiters


WaitersDep = Annotated[WorkWaiters, Depends(get_work_waiters)]


@router.get(
    "/work",
    summary="Lease work",
    responses={200: json_example(worker_examples.WORK)},
)
async def get_work(
    request: Request,
    worker: WorkerDep,
    waiters: WaitersDep,
    platforms: Annotated[list[PlatformList], Query(max_length=200)] = [],  # noqa: B006
    capacity: Annotated[
        str | None,
        Query(
            description="Tasks wanted, 1-100 (default 10): more is 100; missing, not a"
            " positive integer is 10, as the original gateway read it",
            examples=["10"],
        ),
    ] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0,
) -> WorkOut:
    """Lease up to ``capacity`` tasks in strict priority order; ``wait`` long-polls.

    Tasks whose platform or county is at its start limit are skipped (put off until their
    slot); with nothing leased for that reason, ``retry_after`` is the time to the next slot.
    """
    settings, wanted = get_settings(), parse_capacity(capacity)
    requested = _split_platforms(platforms)
    deferred = DeferredStarts()
    if wait <= 0:  # the whole poll in one trip to the threadpool
        leased = await run_in_threadpool(
            _lease_if_allowed,
            worker.worker_id,
            requested,
            wanted,
            settings.lease_timeout_s,
            deferred,
        )
    else:
        names = await _platforms_to_wait_on(requested)
        if not names:
            return WorkOut(tasks=[], retry_after=settings.work_retry_after_s)

        async def lease() -> list[LeasedTask] | None:
            return await run_in_threadpool(
                _lease_if_allowed,
                worker.worker_id,
                names,
                wanted,
                settings.lease_timeout_s,
                deferred,
            )

        async with watch_disconnect(request.receive) as client_gone:
            leased = await wait_for_work(
                waiters, names, capacity=wanted, wait_s=wait, lease=lease, client_gone=client_gone
            )
    leased = leased or []
    return WorkOut(
        tasks=[work_task(task) for task in leased],
        retry_after=_retry_after(leased, deferred, settings.work_retry_after_s),
    )


def _retry_after(leased: list[LeasedTask], deferred: DeferredStarts, default_s: int) -> int:
    if leased:
        return 0
    if deferred.soonest_s is not None:  # work is there, its sites' budget is not
        return max(1, math.ceil(deferred.soonest_s))
    return default_s


def _lease_if_allowed(
    worker_id: str,
    requested: list[str],
    capacity: int,
    lease_timeout_s: float,
    deferred: DeferredStarts,
) -> list[LeasedTask] | None:
    """Lease, unless the worker is paused or none of its platforms is enabled (None: the
    queues were not looked at). Starts over budget are put off and noted in ``deferred``."""
    names, is_paused = _prepare(worker_id, requested)
    if is_paused or not names:
        return None
    return lease_from_broker(
        platforms=names,
        capacity=capacity,
        worker_id=worker_id,
        lease_timeout_s=lease_timeout_s,
        deferred=deferred,
    )
