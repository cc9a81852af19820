"""A typed client for the gateway's worker HTTP contract, and a reference worker built on it.

    from worker_client import ClientConfig, GatewayClient

    with GatewayClient(ClientConfig("http://gateway:8081", token, "worker-7")) as gateway:
        batch = gateway.lease(["demo"], capacity=10, wait_s=20)

``AsyncGatewayClient`` has the same calls for asyncio. ``HeartbeatLoop`` and ``LeaseKeeper``
(threads) or ``AsyncHeartbeatLoop`` and ``keep_lease`` (asyncio) run beside a worker's tasks;
``python -m worker_client`` is the reference worker.
"""

from worker_client.async_background import AsyncHeartbeatLoop, keep_lease
from worker_client.async_client import AsyncGatewayClient
from worker_client.client import GatewayClient
from worker_client.config import ClientConfig
from worker_client.errors import (
    ApiError,
    Forbidden,
    GatewayError,
    GatewayUnreachable,
    InvalidRequest,
    LeaseConflict,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    ValidationFailed,
)
from worker_client.retry_policy import RetryPolicy
from worker_client.retry_steps import RetryNotice
from worker_client.wire import HeartbeatStatus, ResultItem, WorkTask

__all__ = [
    "ApiError",
    "AsyncGatewayClient",
    "AsyncHeartbeatLoop",
    "ClientConfig",
    "Forbidden",
    "GatewayClient",
    "GatewayError",
    "GatewayUnreachable",
    "HeartbeatStatus",
    "InvalidRequest",
    "LeaseConflict",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "RateLimited",
    "ResultItem",
    "RetryNotice",
    "RetryPolicy",
    "ServerError",
    "Unauthorized",
    "ValidationFailed",
    "WorkTask",
    "keep_lease",
]
