"""``python -m worker_client``: the reference worker's options, from flags or the environment.

The worker is deployed apart from the gateway, so its variables have their own prefix,
``TAXLIEN_WORKER_`` (the gateway's ``GATEWAY_*`` settings are the server's):
``TAXLIEN_WORKER_GATEWAY_URL``, ``TAXLIEN_WORKER_TOKEN``, ``TAXLIEN_WORKER_ID``,
``TAXLIEN_WORKER_PLATFORMS``, ``TAXLIEN_WORKER_CONCURRENCY``. A flag wins over its variable.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker_client.client import GatewayClient
from worker_client.config import ClientConfig
from worker_client.reference_worker import ReferenceWorker, WorkerOptions


class WorkerEnvironment(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAXLIEN_WORKER_", extra="ignore")

    gateway_url: str = "http://127.0.0.1:8081"
    token: str | None = None
    id: str | None = None
    platforms: str = "demo"
    concurrency: int = Field(default=4, ge=1, le=100)


def build_parser(env: WorkerEnvironment) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker_client", description="Reference HTTP worker of the gateway"
    )
    parser.add_argument("--gateway-url", default=env.gateway_url)
    parser.add_argument(
        "--token",
        default=env.token,
        help="X-Worker-Token (TAXLIEN_WORKER_TOKEN keeps it out of ps)",
    )
    parser.add_argument(
        "--worker-id",
        default=env.id or f"ref-{socket.gethostname()}-{os.getpid()}",
        help="X-Worker-ID",
    )
    parser.add_argument("--platforms", default=env.platforms, help="comma list")
    parser.add_argument("--concurrency", type=int, default=env.concurrency)
    parser.add_argument("--poll-wait", type=float, default=20.0, help="long poll, s (<= 30)")
    parser.add_argument("--batch-size", type=int, default=50, help="results per POST")
    parser.add_argument("--batch-wait", type=float, default=2.0, help="max s a result waits")
    parser.add_argument("--heartbeat-interval", type=float, default=30.0)
    parser.add_argument("--extend-every", type=float, default=60.0, help="lease extension, s")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="on SIGTERM, s")
    return parser


def parse_options(argv: Sequence[str]) -> tuple[ClientConfig, WorkerOptions]:
    try:
        env = WorkerEnvironment()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SystemExit(f"TAXLIEN_WORKER_{str(first['loc'][0]).upper()}: {first['msg']}") from None
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a worker token is needed: --token or TAXLIEN_WORKER_TOKEN")
    platforms = tuple(name.strip() for name in args.platforms.split(",") if name.strip())
    if not platforms or args.concurrency < 1 or not 0 <= args.poll_wait <= 30:
        parser.error("needs --platforms, --concurrency >= 1 and --poll-wait between 0 and 30")
    config = ClientConfig(args.gateway_url, args.token, args.worker_id)
    options = WorkerOptions(
        platforms=platforms,
        concurrency=args.concurrency,
        poll_wait_s=args.poll_wait,
        batch_size=args.batch_size,
        batch_max_wait_s=args.batch_wait,
        heartbeat_interval_s=args.heartbeat_interval,
        extend_every_s=args.extend_every,
        drain_timeout_s=args.drain_timeout,
    )
    return config, options


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the rest
    config, options = parse_options(sys.argv[1:] if argv is None else argv)
    with GatewayClient(config) as client:
        worker = ReferenceWorker(client, options)

        def stop(signum: int, frame: FrameType | None) -> None:
            worker.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        code = worker.run()
    if worker.has_stuck_tasks():
        # Their leases are given back already; waiting for the threads would hang the exit.
        logging.shutdown()
        os._exit(code)
    return code
