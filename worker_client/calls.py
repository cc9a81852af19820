"""Each contract call as a plain description (``Call``) and the parsing of its answer, shared by
the sync and the async client so both say and read exactly the same things on the wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from worker_client.errors import ApiError, error_class_for_status
from worker_client.retry_policy import parse_retry_after
from worker_client.wire import (
    BatchCompleteOutcome,
    CompleteOutcome,
    ExtendOutcome,
    FailOutcome,
    HeartbeatAnswer,
    HeartbeatStatus,
    RawFileStored,
    ResultItem,
    ResultsOutcome,
    WorkBatch,
)

RESPOND_ASYNC = "respond-async"
MAX_LONG_POLL_S = 30.0
Files = dict[str, tuple[str | None, Any, str]]


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    # Repeating it after a lost answer is harmless (the gateway makes it idempotent).
    is_repeatable: bool
    params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    json_body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Built again for every try: a file being uploaded is rewound first.
    build_files: Callable[[], Files] | None = None
    extra_read_timeout_s: float = 0.0


def lease_call(platforms: Iterable[str], *, capacity: int, wait_s: float) -> Call:
    if not 0 <= wait_s <= MAX_LONG_POLL_S:
        raise ValueError(f"wait_s must be between 0 and {MAX_LONG_POLL_S}, not {wait_s}")
    params: list[tuple[str, Any]] = [("platforms", name) for name in platforms]
    params += [("capacity", capacity), ("wait", wait_s)]
    # A repeated GET /internal/work is a new lease, not the same answer again: tasks handed
    # out in a lost answer would stay leased to this worker, so it is never repeated blindly.
    return Call("GET", "/internal/work", False, params=params, extra_read_timeout_s=wait_s)


def complete_call(task_id: uuid.UUID, lease_token: int) -> Call:
    body = {"lease_token": lease_token}
    return Call("POST", f"/internal/tasks/{task_id}/complete", True, json_body=body)


def complete_many_call(leases: Iterable[tuple[uuid.UUID, int]]) -> Call:
    tasks = [{"task_id": str(task_id), "lease_token": token} for task_id, token in leases]
    return Call("POST", "/internal/tasks/complete", True, json_body={"tasks": tasks})


def fail_call(
    task_id: uuid.UUID, lease_token: int, *, reason: str, message: str, retry_suggested: bool
) -> Call:
    body = {
        "lease_token": lease_token,
        "reason": reason,
        "message": message,
        "retry_suggested": retry_suggested,
    }
    # Not repeatable: a repeat after a lost answer meets a lease that is no longer held (409).
    return Call("POST", f"/internal/tasks/{task_id}/fail", False, json_body=body)


def extend_call(task_id: uuid.UUID, lease_token: int, *, extend_s: int | None) -> Call:
    body: dict[str, Any] = {"lease_token": lease_token}
    if extend_s is not None:
        body["extend_s"] = extend_s
    return Call("POST", f"/internal/tasks/{task_id}/extend", True, json_body=body)


def results_call(items: Sequence[ResultItem], *, respond_async: bool, wait_s: float | None) -> Call:
    body = [item.model_dump(mode="json", exclude_none=True) for item in items]
    headers = {"Prefer": RESPOND_ASYNC} if respond_async else {}
    params = {"wait": wait_s} if wait_s is not None else None
    # Results are idempotent on the gateway: a resent item is ingested once.
    return Call(
        "POST",
        "/internal/results",
        True,
        params=params,
        json_body=body,
        headers=headers,
        extra_read_timeout_s=wait_s or 0.0,
    )


def raw_file_call(
    stream: IO[bytes], *, filename: str, content_type: str, metadata: Mapping[str, Any] | None
) -> Call:
    start = stream.tell() if stream.seekable() else None

    def build_files() -> Files:
        if start is not None:
            stream.seek(start)
        files: Files = {"file": (filename, stream, content_type)}
        if metadata is not None:
            files["metadata"] = (None, json.dumps(metadata), "application/json")
        return files

    # Content-addressed on the gateway: the same page twice is stored once. A stream that
    # cannot be rewound cannot be sent twice.
    return Call("POST", "/internal/raw-files", start is not None, build_files=build_files)


def heartbeat_call(status: HeartbeatStatus) -> Call:
    return Call("POST", "/internal/heartbeat", True, json_body=status.model_dump(mode="json"))


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error for an error answer, from the gateway's envelope when it has one."""
    code, message, details = f"HTTP_{response.status_code}", response.text[:500], None
    request_id = response.headers.get("x-request-id")
    try:
        envelope = response.json()
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        error = envelope["error"]
        code = str(error.get("code", code))
        message = str(error.get("message", message))
        details = error.get("details")
        request_id = request_id or envelope.get("request_id")
    error_class = error_class_for_status(response.status_code)
    return error_class(
        response.status_code,
        code,
        message,
        request_id=request_id,
        details=details,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_work_batch(response: httpx.Response) -> WorkBatch:
    return WorkBatch.model_validate_json(response.content)


def parse_complete(response: httpx.Response) -> CompleteOutcome:
    return CompleteOutcome.model_validate_json(response.content)


def parse_complete_many(response: httpx.Response) -> BatchCompleteOutcome:
    return BatchCompleteOutcome.model_validate_json(response.content)


def parse_fail(response: httpx.Response) -> FailOutcome:
    return FailOutcome.model_validate_json(response.content)


def parse_extend(response: httpx.Response) -> ExtendOutcome:
    return ExtendOutcome.model_validate_json(response.content)


def parse_results(response: httpx.Response) -> ResultsOutcome:
    body = response.json()
    return ResultsOutcome.model_validate({**body, "is_ingested": response.status_code == 200})


def parse_raw_file(response: httpx.Response) -> RawFileStored:
    return RawFileStored.model_validate_json(response.content)


def parse_heartbeat(response: httpx.Response) -> HeartbeatAnswer:
    return HeartbeatAnswer.model_validate_json(response.content)
