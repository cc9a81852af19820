"""How a client reaches the gateway. Plain values: the client is deployed apart from the
gateway and never reads the gateway's own settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker_client.retry_policy import RetryPolicy


@dataclass(frozen=True)
class ClientConfig:
    base_url: str  # e.g. http://127.0.0.1:8081
    worker_token: str
    worker_id: str | None = None  # without it the gateway derives one from token and address
    timeout_s: float = 30.0  # connect, write and read; a long poll adds its wait to the read
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def headers(self) -> dict[str, str]:
        headers = {"X-Worker-Token": self.worker_token}
        if self.worker_id:
            headers["X-Worker-ID"] = self.worker_id
        return headers
