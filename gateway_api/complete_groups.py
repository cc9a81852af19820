"""The API's group commit of single completes (``gateway_api.group_commit`` over
``services.dispatch.grouped_completion``), with its figures for operators."""

from __future__ import annotations

from gateway_api.group_commit import GroupCommit
from gateway_api.metrics import COMPLETE_GROUP_SIZE, COMPLETE_GROUPS_SPLIT
from services.dispatch.grouped_completion import (
    CompleteAnswer,
    CompleteCall,
    is_one_calls_trouble,
    write_completes,
)
from services.dispatch.leases import CompletionOutcome

# Groups of up to 500, by one writer; up to four when groups stall for 100 ms.
MAX_GROUP = 500
MAX_WRITERS = 4
STALL_S = 0.1

CompleteGroups = GroupCommit[CompleteCall, CompletionOutcome]


def _write_counted(calls: list[CompleteCall]) -> list[CompleteAnswer]:
    answers = write_completes(calls)
    COMPLETE_GROUP_SIZE.observe(len(calls))  # written: a split group's calls count alone
    return answers


def _split_counted(exc: Exception) -> bool:
    is_split = is_one_calls_trouble(exc)
    if is_split:
        COMPLETE_GROUPS_SPLIT.inc()
    return is_split


def make_complete_groups() -> CompleteGroups:
    return GroupCommit(
        _write_counted,
        max_group=MAX_GROUP,
        max_writers=MAX_WRITERS,
        stall_s=STALL_S,
        split_on=_split_counted,
    )
