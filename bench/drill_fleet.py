"""The drill's fleet: the API, Celery scrape nodes, a service node (ingest and maintenance),
beat, and reference HTTP workers, each a real process that the drill kills with SIGKILL and
starts again as a supervisor (systemd, Kubernetes) would."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway_localstack.servers import find_free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class FleetProcess:
    name: str
    kind: str  # api, scrape_node, service_node, beat, http_worker
    process: subprocess.Popen[bytes]
    log_path: Path
    is_replaced: bool = False

    def is_running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the process and everything it started (a node's pool children)."""
        if self.is_running():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.is_replaced = True  # the killer starts its replacement

    def kill_children(self) -> int:
        """SIGKILL to the process's children only (a Celery node's pool processes)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        pids = [int(pid) for pid in found.stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it died on its own meanwhile
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.is_running():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Fleet:
    env: dict[str, str]
    worker_token: str
    log_dir: Path
    scrape_queues: list[str]
    platforms: list[str]
    api_url: str = ""
    processes: list[FleetProcess] = field(default_factory=list)
    _serial: int = 0

    def _spawn(
        self, kind: str, command: list[str], extra_env: dict[str, str] | None = None
    ) -> FleetProcess:
        self._serial += 1
        name = f"{kind}-{self._serial}"
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a kill takes its children with it
            )
        started = FleetProcess(name, kind, process, log_path)
        self.processes.append(started)
        return started

    def start_api(self) -> FleetProcess:
        """The API, on the port of the one before it if there was one (workers know it)."""
        if not self.api_url:
            self.api_url = f"http://127.0.0.1:{find_free_port()}"
        port = self.api_url.rsplit(":", 1)[1]
        return self._spawn("api", [sys.executable, "-m", "gateway_api"],
                           {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": port})  # fmt: skip

    def start_celery_node(self, kind: str, queues: list[str], concurrency: int) -> FleetProcess:
        node_name = f"{kind}-{self._serial + 1}@drill"
        command = [
            sys.executable, "-m", "celery", "-A", "bench.drill_celery_app", "worker",
            "-Q", ",".join(queues), "-n", node_name, "-c", str(concurrency), "-P", "prefork",
            "-E", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        return self._spawn(kind, command)

    def start_scrape_node(self, concurrency: int = 2) -> FleetProcess:
        return self.start_celery_node("scrape_node", self.scrape_queues, concurrency)

    def start_service_node(self) -> FleetProcess:
        return self.start_celery_node("service_node", ["ingest", "maintenance"], 2)

    def start_beat(self) -> FleetProcess:
        schedule = self.log_dir / "beat-schedule"
        command = [sys.executable, "-m", "celery", "-A", "bench.drill_celery_app", "beat",
                   "-s", str(schedule), "--loglevel", "INFO"]  # fmt: skip
        return self._spawn("beat", command)

    def start_http_worker(self, concurrency: int = 3) -> FleetProcess:
        command = [
            sys.executable, "-m", "bench.drill_http_worker",
            "--platforms", ",".join(self.platforms), "--concurrency", str(concurrency),
            "--poll-wait", "5", "--heartbeat-interval", "3", "--extend-every", "4",
            "--batch-size", "20", "--batch-wait", "0.5", "--drain-timeout", "10",
        ]  # fmt: skip
        env = {
            "TAXLIEN_WORKER_GATEWAY_URL": self.api_url,
            "TAXLIEN_WORKER_TOKEN": self.worker_token,
            "TAXLIEN_WORKER_ID": f"drill-http-{self._serial + 1}",
        }
        return self._spawn("http_worker", command, env)

    def running(self, kind: str) -> list[FleetProcess]:
        return [p for p in self.processes if p.kind == kind and p.is_running()]

    def replace(self, victim: FleetProcess) -> FleetProcess:
        """A new process of the victim's kind, as its supervisor would start."""
        starters = {
            "api": self.start_api,
            "beat": self.start_beat,
            "scrape_node": self.start_scrape_node,
            "service_node": self.start_service_node,
            "http_worker": self.start_http_worker,
        }
        return starters[victim.kind]()

    def revive_exited(self) -> list[tuple[FleetProcess, FleetProcess]]:
        """Processes that exited on their own, each with the one started in its place (the
        supervisor's restart policy); a process is revived once."""
        revived = []
        for process in list(self.processes):
            if not process.is_running() and not process.is_replaced:
                process.is_replaced = True
                revived.append((process, self.replace(process)))
        return revived

    def pick(self, kind: str, rng: random.Random) -> FleetProcess | None:
        candidates = self.running(kind)
        return rng.choice(candidates) if candidates else None

    def wait_until_ready(self, timeout_s: float = 90.0) -> None:
        """The API answers and every Celery process has logged that it is ready."""
        deadline = time.monotonic() + timeout_s
        while True:
            dead = [p for p in self.processes if not p.is_running()]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited at start:\n{dead[0].log()[-3000:]}")
            if self._api_answers() and all(self._is_ready(p) for p in self.processes):
                return
            if time.monotonic() > deadline:
                waiting = [p.name for p in self.processes if not self._is_ready(p)]
                raise RuntimeError(f"not ready after {timeout_s:.0f}s: {waiting}")
            time.sleep(0.2)

    def _api_answers(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _is_ready(process: FleetProcess) -> bool:
        if process.kind in ("scrape_node", "service_node"):
            return " ready." in process.log()
        if process.kind == "beat":
            return "beat: Starting" in process.log()
        return True

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
