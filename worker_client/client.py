"""``GatewayClient``: the worker contract over a blocking ``httpx.Client``, with retries."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import httpx

from worker_client import calls
from worker_client.calls import Call
from worker_client.config import ClientConfig
from worker_client.retry_steps import (
    TRANSIENT_TRANSPORT_ERRORS,
    OnRetry,
    RetryNotice,
    wait_after_response,
    wait_after_transport_error,
)
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

logger = logging.getLogger(__name__)


def log_retry(notice: RetryNotice) -> None:
    logger.warning(
        "%s %s failed (try %d: %s); retrying in %.2fs",
        notice.method,
        notice.path,
        notice.attempt,
        notice.cause,
        notice.delay_s,
    )


class GatewayClient:
    """Thread-safe: one client (one connection pool) can serve every thread of a worker."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        on_retry: OnRetry = log_retry,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.on_retry = on_retry
        self._http = httpx.Client(
            base_url=config.base_url,
            headers=config.headers(),
            timeout=config.timeout_s,
            transport=transport,
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def lease(
        self, platforms: Iterable[str], *, capacity: int = 10, wait_s: float = 0
    ) -> WorkBatch:
        """Up to ``capacity`` tasks; ``wait_s`` (≤ 30) long-polls while there are none."""
        call = calls.lease_call(platforms, capacity=capacity, wait_s=wait_s)
        return calls.parse_work_batch(self._send(call))

    def complete(self, task_id: uuid.UUID, lease_token: int) -> CompleteOutcome:
        return calls.parse_complete(self._send(calls.complete_call(task_id, lease_token)))

    def complete_many(self, leases: Iterable[tuple[uuid.UUID, int]]) -> BatchCompleteOutcome:
        """Each (task id, lease token) succeeds or fails on its own (see ``errors``)."""
        return calls.parse_complete_many(self._send(calls.complete_many_call(leases)))

    def fail(
        self,
        task_id: uuid.UUID,
        lease_token: int,
        *,
        reason: str,
        message: str = "",
        retry_suggested: bool = True,
    ) -> FailOutcome:
        call = calls.fail_call(
            task_id, lease_token, reason=reason, message=message, retry_suggested=retry_suggested
        )
        return calls.parse_fail(self._send(call))

    def extend(
        self, task_id: uuid.UUID, lease_token: int, *, extend_s: int | None = None
    ) -> ExtendOutcome:
        call = calls.extend_call(task_id, lease_token, extend_s=extend_s)
        return calls.parse_extend(self._send(call))

    def submit_results(
        self,
        items: Sequence[ResultItem],
        *,
        respond_async: bool = True,
        wait_s: float | None = None,
    ) -> ResultsOutcome:
        """Queue results for ingest; ``respond_async`` answers once queued (202), ``wait_s``
        waits that long for the ingest outcome."""
        call = calls.results_call(items, respond_async=respond_async, wait_s=wait_s)
        return calls.parse_results(self._send(call))

    def upload_raw_file(
        self,
        stream: IO[bytes],
        *,
        filename: str = "page.html",
        content_type: str = "text/html",
        metadata: Mapping[str, Any] | None = None,
    ) -> RawFileStored:
        """Stream ``stream`` to the gateway in chunks (never read whole into memory)."""
        call = calls.raw_file_call(
            stream, filename=filename, content_type=content_type, metadata=metadata
        )
        return calls.parse_raw_file(self._send(call))

    def heartbeat(self, status: HeartbeatStatus) -> HeartbeatAnswer:
        return calls.parse_heartbeat(self._send(calls.heartbeat_call(status)))

    def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,  # type: ignore[arg-type]
                    json=call.json_body,
                    headers=dict(call.headers),
                    files=call.build_files() if call.build_files else None,
                    timeout=self._timeout(call),
                )
            except TRANSIENT_TRANSPORT_ERRORS as exc:
                notice = wait_after_transport_error(call, exc, attempt, self.config.retry)
            else:
                answered = wait_after_response(call, response, attempt, self.config.retry)
                if answered is None:
                    return response
                notice = answered
            self.on_retry(notice)
            time.sleep(notice.delay_s)

    def _timeout(self, call: Call) -> httpx.Timeout:
        base = self.config.timeout_s
        return httpx.Timeout(base, read=base + call.extra_read_timeout_s)
