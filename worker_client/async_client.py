"""``AsyncGatewayClient``: the same calls as ``GatewayClient`` over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

import httpx

from worker_client import calls
from worker_client.calls import Call
from worker_client.client import log_retry
from worker_client.config import ClientConfig
from worker_client.retry_steps import (
    TRANSIENT_TRANSPORT_ERRORS,
    OnRetry,
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


class AsyncGatewayClient:
    def __init__(
        self,
        config: ClientConfig,
        *,
        on_retry: OnRetry = log_retry,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.on_retry = on_retry
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers=config.headers(),
            timeout=config.timeout_s,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def lease(
        self, platforms: Iterable[str], *, capacity: int = 10, wait_s: float = 0
    ) -> WorkBatch:
        call = calls.lease_call(platforms, capacity=capacity, wait_s=wait_s)
        return calls.parse_work_batch(await self._send(call))

    async def complete(self, task_id: uuid.UUID, lease_token: int) -> CompleteOutcome:
        return calls.parse_complete(await self._send(calls.complete_call(task_id, lease_token)))

    async def complete_many(self, leases: Iterable[tuple[uuid.UUID, int]]) -> BatchCompleteOutcome:
        return calls.parse_complete_many(await self._send(calls.complete_many_call(leases)))

    async def fail(
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
        return calls.parse_fail(await self._send(call))

    async def extend(
        self, task_id: uuid.UUID, lease_token: int, *, extend_s: int | None = None
    ) -> ExtendOutcome:
        call = calls.extend_call(task_id, lease_token, extend_s=extend_s)
        return calls.parse_extend(await self._send(call))

    async def submit_results(
        self,
        items: Sequence[ResultItem],
        *,
        respond_async: bool = True,
        wait_s: float | None = None,
    ) -> ResultsOutcome:
        call = calls.results_call(items, respond_async=respond_async, wait_s=wait_s)
        return calls.parse_results(await self._send(call))

    async def upload_raw_file(
        self,
        stream: IO[bytes],
        *,
        filename: str = "page.html",
        content_type: str = "text/html",
        metadata: Mapping[str, Any] | None = None,
    ) -> RawFileStored:
        call = calls.raw_file_call(
            stream, filename=filename, content_type=content_type, metadata=metadata
        )
        return calls.parse_raw_file(await self._send(call))

    async def heartbeat(self, status: HeartbeatStatus) -> HeartbeatAnswer:
        return calls.parse_heartbeat(await self._send(calls.heartbeat_call(status)))

    async def _send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
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
            await asyncio.sleep(notice.delay_s)

    def _timeout(self, call: Call) -> httpx.Timeout:
        base = self.config.timeout_s
        return httpx.Timeout(base, read=base + call.extra_read_timeout_s)
