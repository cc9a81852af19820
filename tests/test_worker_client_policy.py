"""The retry rules as plain functions: which answers are tried again, and how long to wait."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from worker_client import OutcomeUnknown, RetryPolicy, ServerError
from worker_client.calls import complete_call, fail_call, lease_call
from worker_client.retry_policy import parse_retry_after
from worker_client.retry_steps import wait_after_response, wait_after_transport_error

POLICY = RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=2.0)
REQUEST = httpx.Request("POST", "http://gateway/internal/tasks/x/complete")


def answer(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    envelope = {"error": {"code": "INTERNAL_ERROR", "message": "boom"}, "request_id": "r-1"}
    return httpx.Response(status, json=envelope, headers=headers, request=REQUEST)


def test_backoff_is_jittered_below_a_doubling_ceiling_that_is_capped() -> None:
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (9, 2.0)):
        delays = [POLICY.delay_s(attempt) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1  # jittered, so a fleet does not come back in step


def test_retry_after_is_the_least_wait_and_too_long_a_one_is_left_to_the_caller() -> None:
    assert all(3.0 <= POLICY.delay_s(1, retry_after_s=3) <= 3.05 for _ in range(50))
    assert not POLICY.allows_retry(1, retry_after_s=POLICY.max_retry_after_s + 1)
    assert not POLICY.allows_retry(POLICY.max_attempts)


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 30 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_repeatable_call_is_retried_on_every_transient_status(status: int) -> None:
    notice = wait_after_response(complete_call(uuid.uuid4(), 1), answer(status), 1, POLICY)
    assert notice is not None and notice.status_code == status


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_lease_is_not_retried_on_an_error_that_may_follow_its_processing(
    status: int,
) -> None:
    with pytest.raises(ServerError) as refused:
        wait_after_response(lease_call(["demo"], capacity=1, wait_s=0), answer(status), 1, POLICY)
    assert refused.value.code == "INTERNAL_ERROR" and refused.value.request_id == "r-1"


def test_an_unsafe_call_is_retried_when_nothing_was_sent_and_not_when_the_answer_was_lost() -> None:
    call = fail_call(uuid.uuid4(), 1, reason="timeout", message="", retry_suggested=True)
    refused = httpx.ConnectError("connection refused", request=REQUEST)
    cut = httpx.RemoteProtocolError("peer closed connection", request=REQUEST)

    assert wait_after_transport_error(call, refused, 1, POLICY).cause.startswith("ConnectError")
    with pytest.raises(OutcomeUnknown):
        wait_after_transport_error(call, cut, 1, POLICY)
