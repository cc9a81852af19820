"""What happens after one try of a call: the answer, a wait before the next try, or an error.

Shared by the sync and async clients; only the sleeping differs between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from worker_client.calls import Call, error_from_response
from worker_client.errors import GatewayUnreachable, OutcomeUnknown
from worker_client.retry_policy import RETRYABLE_STATUSES, RetryPolicy

# Answers that mean the gateway did not act on the request (it refused the work up front):
# even a call that is unsafe to repeat may be tried again. Not a 500: it may come after the
# commit, and a lease repeated then would strand the tasks of the lost answer.
_NOT_ACTED_ON = frozenset({429, 503})
# Trouble before the request left: nothing reached the gateway.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
TRANSIENT_TRANSPORT_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryNotice:
    """Told to ``on_retry`` before each wait: what failed, and how long until the next try."""

    method: str
    path: str
    attempt: int  # the try that failed, from 1
    delay_s: float
    cause: str  # "503 SERVICE_UNAVAILABLE: ..." or "ConnectError: ..."
    status_code: int | None


OnRetry = Callable[[RetryNotice], None]


def wait_after_response(
    call: Call, response: httpx.Response, attempt: int, policy: RetryPolicy
) -> RetryNotice | None:
    """None when ``response`` is the answer; a notice to wait and try again; or raises the
    typed error."""
    if response.status_code < 400:
        return None
    error = error_from_response(response)
    retryable = RETRYABLE_STATUSES if call.is_repeatable else _NOT_ACTED_ON
    if response.status_code in retryable and policy.allows_retry(attempt, error.retry_after_s):
        delay = policy.delay_s(attempt, error.retry_after_s)
        return RetryNotice(call.method, call.path, attempt, delay, str(error), response.status_code)
    raise error


def wait_after_transport_error(
    call: Call, exc: httpx.TransportError, attempt: int, policy: RetryPolicy
) -> RetryNotice:
    """A notice to wait and try again, or raises why not."""
    where = f"{call.method} {call.path}"
    if not isinstance(exc, _NOT_SENT) and not call.is_repeatable:
        raise OutcomeUnknown(
            f"{where}: sent, but the answer was lost ({type(exc).__name__}: {exc}); "
            "not repeated, as the gateway may have acted on it"
        ) from exc
    if not policy.allows_retry(attempt):
        raise GatewayUnreachable(
            f"{where}: no answer after {attempt} tries ({type(exc).__name__}: {exc})"
        ) from exc
    cause = f"{type(exc).__name__}: {exc}"
    return RetryNotice(call.method, call.path, attempt, policy.delay_s(attempt), cause, None)
