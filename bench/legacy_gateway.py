"""The old gateway's dispatch design, rebuilt behind the same web stack as the baseline of
``python -m bench dispatch``: tasks as JSON strings in Redis lists ``queue:{platform}:p{n}``,
``RPOPLPUSH`` into ``processing:{worker_id}`` to lease, ``LRANGE`` + ``LREM`` to complete.
No ledger, no leases, no retries: what the old gateway did, as its Python version did it
(async routes on ``redis.asyncio``). As it was, a call takes at most one task per platform and
priority (one ``RPOPLPUSH`` each), whatever the capacity; with ``LEGACY_FILL_CAPACITY=1`` a
call fills up to ``capacity``, a stronger baseline than the original ever was.

``python -m bench.legacy_gateway`` serves it with uvicorn on GATEWAY_HOST:GATEWAY_PORT, in
GATEWAY_API_WORKERS processes, exactly as ``python -m gateway_api`` serves the gateway.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Annotated, Any

import redis.asyncio as redis
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Query

PRIORITIES = (1, 2, 3, 4)


def queue_key(platform: str, priority: int) -> str:
    return f"queue:{platform}:p{priority}"


def create_app() -> FastAPI:
    client = redis.Redis.from_url(os.environ["GATEWAY_REDIS_URL"])
    token = os.environ["GATEWAY_WORKER_TOKENS"].split(",")[0]
    per_queue = 100 if os.environ.get("LEGACY_FILL_CAPACITY") == "1" else 1
    app = FastAPI()

    def check_token(given: str | None) -> None:
        if given is None or not secrets.compare_digest(given, token):
            raise HTTPException(401, "invalid worker token")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/internal/heartbeat")
    async def post_heartbeat(
        x_worker_token: Annotated[str | None, Header()] = None,
        x_worker_id: Annotated[str, Header()] = "unknown",
    ) -> dict[str, Any]:
        check_token(x_worker_token)
        key = f"worker:{x_worker_id}:status"
        await client.hset(key, mapping={"last_seen": time.time(), "active_tasks": 0})
        await client.expire(key, 300)
        return {"acknowledged": True, "commands": None}

    @app.get("/internal/work")
    async def get_work(
        platforms: Annotated[str, Query()] = "demo",
        capacity: Annotated[int, Query(ge=1, le=100)] = 10,
        x_worker_token: Annotated[str | None, Header()] = None,
        x_worker_id: Annotated[str, Header()] = "unknown",
    ) -> dict[str, Any]:
        check_token(x_worker_token)
        processing = f"processing:{x_worker_id}"
        tasks: list[dict[str, Any]] = []
        for platform in platforms.split(","):
            for priority in PRIORITIES:
                for _ in range(per_queue):
                    if len(tasks) >= capacity:
                        break
                    raw = await client.rpoplpush(queue_key(platform, priority), processing)
                    if raw is None:
                        break
                    tasks.append(json.loads(raw))
        return {"tasks": tasks, "retry_after": 0 if tasks else 5}

    @app.post("/internal/tasks/{task_id}/complete")
    async def complete_task(
        task_id: str,
        x_worker_token: Annotated[str | None, Header()] = None,
        x_worker_id: Annotated[str, Header()] = "unknown",
    ) -> dict[str, bool]:
        check_token(x_worker_token)
        processing = f"processing:{x_worker_id}"
        for raw in await client.lrange(processing, 0, -1):
            if json.loads(raw).get("task_id") == task_id:
                await client.lrem(processing, 1, raw)
                return {"success": True}
        return {"success": False}

    return app


def main() -> int:
    uvicorn.run(
        "bench.legacy_gateway:create_app",
        factory=True,
        host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
        port=int(os.environ.get("GATEWAY_PORT", "8000")),
        workers=int(os.environ.get("GATEWAY_API_WORKERS", "1")),
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
