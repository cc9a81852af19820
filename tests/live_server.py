"""The app served by a real uvicorn server in a thread, for what a TestClient cannot do
(a client that hangs up mid-request)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from gateway_localstack.servers import find_free_port
from tests.waiting import wait_for


@contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a loopback port; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=find_free_port(), log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-api-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, what="the live API server to start")
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
