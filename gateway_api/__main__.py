"""``python -m gateway_api``: serve the API with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import os
import sys
import tempfile

import uvicorn

from settings import ConfigurationError, load_settings


def share_metrics_between_processes() -> None:
    """prometheus_client's multiprocess mode, which it reads from its own variable: every
    process writes its counters to files there and ``/metrics`` sums them, whichever process
    is scraped. A folder of this run's own when none is configured (stale files from an
    earlier run would be added in)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="taxlien-api-metrics-")


def main() -> int:
    try:
        settings = load_settings()
        settings.check_servers()
    except ConfigurationError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    if settings.api_workers > 1:
        share_metrics_between_processes()
    uvicorn.run(
        "gateway_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.api_workers,
        log_config=None,
        # Our middleware logs every request with its request id; uvicorn's line would repeat it.
        access_log=False,
        # The client address is worked out by the app (services.public.client_address):
        # uvicorn's would accept any text from X-Forwarded-For as an address.
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
