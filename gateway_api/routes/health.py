"""Liveness, readiness and the Prometheus scrape endpoint. None of them need auth."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from db.session import get_engine
from gateway_api.metrics import render_metrics
from gateway_api.timed_cache import TimedCache
from services.readiness import ProbeResult, probe_broker, probe_database, probe_redis
from settings import get_settings

router = APIRouter(tags=["operations"])


class HealthOut(BaseModel):
    status: str
    app: str


class ReadinessOut(BaseModel):
    status: str
    checks: dict[str, str]


@router.get(
    "/health",
    summary="Liveness",
)
def get_health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="healthy", app="internal")


def _probe_all() -> list[ProbeResult]:
    settings = get_settings()
    return [
        probe_database(get_engine()),
        probe_redis(settings.cache_url),
        probe_broker(settings.celery_broker_url),
    ]


# Probes open connections to every server: at most one round per interval, whoever asks.
readiness = TimedCache(_probe_all, max_age_s=lambda: get_settings().readiness_cache_s)


@router.get(
    "/health/ready",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut}},
    summary="Readiness",
)
async def get_readiness() -> JSONResponse:
    """Readiness: database, Redis and broker reachable; 503 names what is down."""
    results = await run_in_threadpool(readiness.get)
    checks = {r.name: "ok" if r.is_ok else f"down ({r.error})" for r in results}
    is_ready = all(r.is_ok for r in results)
    body = ReadinessOut(status="ready" if is_ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if is_ready else 503)


@router.get("/metrics", include_in_schema=False)
def get_metrics() -> Response:
    payload, content_type = render_metrics()
    return Response(payload, media_type=content_type)
