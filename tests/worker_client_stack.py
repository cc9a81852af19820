"""A live stack for the worker client's tests: the real app on a real uvicorn server that can be
stopped and started again on the same port, and reference worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.celery_workers import REPO_ROOT
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RestartableServer:
    """``app`` served by uvicorn in a thread on one port for the whole test, however often it
    is stopped (connections refused) and started again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="live-api", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        wait_for(lambda: server.started, what="the live API server to start")

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._server = self._thread = None


class FaultyFront:
    """In front of the app, as a proxy or a flaky network would be.

    - ``refuse_next``: that many requests get 429 with ``Retry-After: 1`` in the gateway's
      envelope, as a rate-limiting proxy answers (the gateway never sends 429 to workers);
    - ``cut_next``: that many requests reach the app, which acts on them, and the connection is
      cut after the status line: the client never gets the answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refuse_next = 0
        self.cut_next = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif self.refuse_next > 0:
            self.refuse_next -= 1
            from gateway_api.errors import error_response

            response = error_response(
                429, "RATE_LIMIT_EXCEEDED", "slow down", headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
        elif self.cut_next > 0:
            self.cut_next -= 1
            await self.app(scope, receive, _cut_before_body(send))
        else:
            await self.app(scope, receive, send)


class AnswerCut(Exception):
    """Raised in the server while it sends the answer: uvicorn drops the connection."""


def _cut_before_body(send: Send) -> Send:
    async def send_status_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise AnswerCut("answer cut by the test")
        await send(message)

    return send_status_only


@dataclass
class ReferenceWorkerProcess:
    worker_id: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        return self.process.wait(timeout=timeout_s)


def start_reference_worker(
    gateway_url: str,
    token: str,
    worker_id: str,
    *,
    log_dir: Path,
    options: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> ReferenceWorkerProcess:
    """``python -m worker_client`` as a deployment runs it (settings from its environment)."""
    env = {
        **os.environ,
        "TAXLIEN_WORKER_GATEWAY_URL": gateway_url,
        "TAXLIEN_WORKER_TOKEN": token,
        "TAXLIEN_WORKER_ID": worker_id,
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "worker_client", "--platforms", "demo", *(options or [])]
    log_path = log_dir / f"{worker_id}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ReferenceWorkerProcess(worker_id, process, log_path)
