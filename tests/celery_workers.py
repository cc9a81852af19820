"""Real Celery worker processes for tests (prefork, events on), started and killed on demand."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class WorkerProcess:
    name: str  # the node name, e.g. "w-1a2b@host"
    process: subprocess.Popen[bytes]
    log_path: Path

    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """``kill -9`` the whole worker: main process and its prefork children."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def kill_children(self) -> None:
        """``kill -9`` only the pool children, as the OOM killer would."""
        subprocess.run(["pkill", "-9", "-P", str(self.process.pid)], check=False)

    def stop(self, *, timeout_s: float = 20.0) -> None:
        if not self.is_running():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_worker(
    queues: list[str],
    *,
    log_dir: Path,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
    ready_timeout_s: float = 60.0,
    app_module: str = "tasks.app",
) -> WorkerProcess:
    from tasks.app import app

    name = f"w-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    log_path = log_dir / f"{name.split('@')[0]}.log"
    command = [
        sys.executable, "-m", "celery", "-A", app_module, "worker",
        "-Q", ",".join(queues), "-n", name, "-c", str(concurrency), "-P", "prefork",
        "-E", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    env = {**os.environ, **(extra_env or {})}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(name=name, process=process, log_path=log_path)

    def is_ready() -> bool:
        if not worker.is_running():
            raise AssertionError(f"worker {name} exited early:\n{worker.log()}")
        return bool(app.control.ping(destination=[name], timeout=0.5))

    try:
        wait_for(is_ready, timeout_s=ready_timeout_s, what=f"worker {name} to answer ping")
    except BaseException:
        if worker.is_running():  # nobody else will stop it: the caller never gets it
            worker.kill()
        raise
    return worker
