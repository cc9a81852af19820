"""``python -m gateway_api``: serve the API with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import sys

import uvicorn

from settings import ConfigurationError, load_settings


def main() -> int:
    try:
        settings = load_settings()
        settings.check_servers()
    except ConfigurationError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    uvicorn.run(
        "gateway_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
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
