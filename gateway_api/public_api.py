"""Mounts the public ``/v1`` API and the API-key admin routes on the application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway_api.public_access import RateLimitHeadersMiddleware
from gateway_api.routes import (
    admin_api_keys,
    v1_parcels,
    v1_properties,
    v1_search,
    v1_top_lists,
    v1_usage,
)
from settings import get_settings

# Response headers a browser script may read.
EXPOSED_HEADERS = (
    "X-Request-ID", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
    "X-RateLimit-Reset", "X-RateLimit-Burst",
)  # fmt: skip


def install_public_api(app: FastAPI) -> None:
    # Added before the request-context middleware, so it sits inside it and sees every /v1
    # answer, error envelopes included.
    app.add_middleware(RateLimitHeadersMiddleware)
    origins = get_settings().public_cors_origins
    if origins:
        # Inside the request context, so preflight answers carry X-Request-ID too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=[*EXPOSED_HEADERS],
            max_age=600,
        )
    for module in (v1_parcels, v1_properties, v1_search, v1_top_lists, v1_usage, admin_api_keys):
        app.include_router(module.router)
