"""Pure ASGI middleware: request id on every response, metrics by route template, and a
last-resort 500 envelope so no stack trace ever reaches a client."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_api.errors import error_response
from gateway_api.metrics import REQUEST_DURATION, REQUESTS, UNMATCHED_ROUTE
from observability.request_context import REQUEST_ID_HEADER, sanitize_request_id, set_request_id
from services.errors import ErrorCode

logger = logging.getLogger("gateway_api.requests")


# Any string is a valid HTTP method token: a label per method would let one client add
# series without bound. Methods this API does not serve are counted together.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(REQUEST_ID_HEADER.lower().encode())
        request_id = sanitize_request_id(raw_id.decode("latin-1") if raw_id else None)
        set_request_id(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception(
                "unhandled error on %s %s", method_label(scope["method"]), _route_template(scope)
            )
            if status_holder["started"]:
                raise
            response = error_response(500, ErrorCode.INTERNAL_ERROR, "internal server error")
            await response(scope, receive, send_with_request_id)
        finally:
            path = _route_template(scope)
            method = method_label(scope["method"])
            REQUESTS.labels(method, path, str(status_holder["status"])).inc()
            REQUEST_DURATION.labels(method, path).observe(time.perf_counter() - started)
            if path not in ("/metrics", "/health"):
                logger.info(
                    "request",
                    extra={
                        "method": method,
                        "path": path,
                        "status": status_holder["status"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
