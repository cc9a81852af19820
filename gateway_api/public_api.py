"""Mounts the public ``/v1`` API and the API-key admin routes on the application."""

from __future__ import annotations

from fastapi import FastAPI

from gateway_api.public_access import RateLimitHeadersMiddleware
from gateway_api.routes import admin_api_keys, v1_parcels, v1_search, v1_top_lists, v1_usage


def install_public_api(app: FastAPI) -> None:
    # Added before the request-context middleware, so it sits inside it and sees every /v1
    # answer, error envelopes included.
    app.add_middleware(RateLimitHeadersMiddleware)
    for module in (v1_parcels, v1_search, v1_top_lists, v1_usage, admin_api_keys):
        app.include_router(module.router)
