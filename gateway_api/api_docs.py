"""What the OpenAPI says beyond the route signatures: the error answers (all in the one
envelope) by status, the three credentials as security schemes, the tags, and the interactive
docs served from package files (``fastapi_offline``'s Swagger UI and ReDoc builds), so
``/docs`` and ``/redoc`` work without a network.

Each route documents exactly the statuses it can answer; ``tests/test_openapi_truth.py``
drives every route's error paths and compares.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.staticfiles import StaticFiles

from gateway_api.errors import ErrorEnvelope

ERROR_DESCRIPTIONS = {
    401: "Missing or invalid credential (`UNAUTHORIZED`)",
    403: "The credential may not do this: another worker's id, or a feature or daily quota"
    " the API key's tier does not include (`FORBIDDEN`, `TIER_LIMIT_EXCEEDED`)",
    404: "No such resource (`NOT_FOUND`); the message names the id",
    409: "The resource's state forbids it, e.g. the lease is no longer this worker's (`CONFLICT`)",
    413: "The body is over this route's size limit (`PAYLOAD_TOO_LARGE`)",
    422: "A parameter, header or body field is missing or invalid (`VALIDATION_ERROR`);"
    " `details` lists each field",
    429: "Rate limit reached (`RATE_LIMIT_EXCEEDED`); `Retry-After` says when to retry",
    500: "Unexpected failure (`INTERNAL_ERROR`); the request id finds it in the logs",
    503: "A dependency is down or busy (`SERVICE_UNAVAILABLE`); retry after `Retry-After`",
}


def error_responses(
    *statuses: int, notes: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status answered with the error envelope;
    ``notes`` replaces a status's general description with what it means on this route."""
    return {
        status: {
            "model": ErrorEnvelope,
            "description": (notes or {}).get(status) or ERROR_DESCRIPTIONS[status],
        }
        for status in statuses
    }


# Any route: a bug, or every database connection busy.
SERVER_ERRORS = error_responses(500, 503)
# X-Worker-Token checked (401), X-Worker-ID checked against it (422 malformed, 403 not its own).
WORKER_ERRORS = error_responses(401, 403, 422)
ADMIN_ERRORS = error_responses(401)
# The key (401, 422 for a malformed header), the token bucket (429), admission and the
# limiter's Redis (503).
PUBLIC_ERRORS = error_responses(401, 422, 429, 503)

WORKER_TOKEN = APIKeyHeader(
    name="X-Worker-Token",
    scheme_name="WorkerToken",
    description="A worker credential; name the worker with `X-Worker-ID` (one of the ids the"
    " token is bound to)",
    auto_error=False,
)
ADMIN_TOKEN = APIKeyHeader(
    name="X-Admin-Token", scheme_name="AdminToken", description="An operator token",
    auto_error=False,
)  # fmt: skip
PUBLIC_API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    description="A public API key (its tier sets the limits); without one, anonymous by IP",
    auto_error=False,
)
PUBLIC_BEARER = HTTPBearer(
    scheme_name="ApiKeyBearer",
    description="The same API key as `Authorization: Bearer <key>` (the original's header)",
    auto_error=False,
)

TAGS = [
    {"name": "workers", "description": "The worker HTTP contract (`/internal/*`): lease work,"
     " finish it, send results and raw pages, heartbeat. Needs `X-Worker-Token`."},
    {"name": "admin", "description": "Operators (`/admin/*`): tasks, dead letters, ingest"
     " rejects, platforms, workers, credentials and API keys. Needs `X-Admin-Token`."},
    {"name": "public", "description": "Parcel search for apps and B2B clients (`/v1`): API keys"
     " with tiers, per-minute token buckets and daily quotas; anonymous callers are limited"
     " by IP."},
    {"name": "operations", "description": "Liveness and readiness, no credential."},
]  # fmt: skip

_ASSETS = "/docs/assets"


def install_offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with every script, style and icon served here.

    The app must be made with ``docs_url=None, redoc_url=None``.
    """
    static = files("fastapi_offline") / "static"
    app.mount(_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    title = f"{app.title} - API docs"

    @app.get("/docs", include_in_schema=False)
    def get_swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def get_redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
