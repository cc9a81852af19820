"""The first thing every request meets: its body cap and, on worker and operator routes, its
token check, both before a byte of the body is read; on public routes, admission (at most
``public_max_concurrency`` in progress, so anonymous traffic cannot take every thread and
connection that workers need).

FastAPI parses a JSON body before it runs the route's dependencies, so without this a request
with no token is read in full (and invalid JSON without a token is a 422, not a 401).
FastAPI's own ``max_body_size`` answers a declared oversize body in plain text, outside the
error envelope and without the request id, so the cap is enforced here instead.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio import to_thread
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_api.auth import is_token_accepted, worker_identity_cache
from gateway_api.errors import error_response
from services.errors import ErrorCode
from services.ingest.raw_upload import MAX_METADATA_BYTES
from settings import GatewaySettings, get_settings

# Multipart part headers and boundaries beside a raw file and its metadata.
RAW_UPLOAD_OVERHEAD_BYTES = 64 * 1024 + MAX_METADATA_BYTES


@dataclass(frozen=True)
class BodyCaps:
    """Bytes a request body may have, by route family; everything else gets ``default``."""

    default: int
    admin: int
    results: int
    raw_files: int

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> BodyCaps:
        return cls(
            default=settings.max_body_bytes,
            admin=settings.admin_max_body_bytes,
            results=settings.results_max_body_bytes,
            raw_files=settings.raw_file_max_bytes + RAW_UPLOAD_OVERHEAD_BYTES,
        )

    def for_path(self, path: str) -> int:
        if path == "/internal/results":
            return self.results
        if path == "/internal/raw-files":
            return self.raw_files
        if path.startswith("/admin/"):
            return self.admin
        return self.default


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _is_worker_token_valid(token: str | None) -> bool:
    cache = worker_identity_cache()
    directory = cache.directory() if cache.is_fresh() else await to_thread.run_sync(cache.directory)
    return directory.authenticate(token) is not None


async def _auth_problem(path: str, headers: Headers) -> str | None:
    """Why the request's token is refused, for the routes that need one."""
    if path.startswith("/internal/"):
        if not await _is_worker_token_valid(headers.get("x-worker-token")):
            return "missing or invalid X-Worker-Token"
    elif path.startswith("/admin/") and not is_token_accepted(
        headers.get("x-admin-token"), get_settings().admin_tokens
    ):
        return "missing or invalid X-Admin-Token"
    return None


def _capped_receive(receive: Receive, limit: int) -> Callable[[], object]:
    received = 0

    async def receive_capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                # Raised inside the route's body read, which passes on only an HTTPException
                # (anything else becomes a 400); the error handlers render the envelope.
                raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
        return message

    return receive_capped


class PublicAdmission:
    """At most ``limit`` public requests in progress; the rest wait (without a thread) up to
    ``timeout_s`` for a place, then get a 503."""

    def __init__(self, limit: int, timeout_s: float) -> None:
        self.limit, self.timeout_s = limit, timeout_s
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()

    def _semaphore(self) -> anyio.Semaphore:
        # One per event loop: a test client runs each session on a loop of its own.
        loop = asyncio.get_running_loop()
        if loop not in self._semaphores:
            self._semaphores[loop] = anyio.Semaphore(self.limit)
        return self._semaphores[loop]

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        semaphore = self._semaphore()
        admitted = False
        with anyio.move_on_after(self.timeout_s):
            await semaphore.acquire()
            admitted = True
        if not admitted:
            message = "the public API is busy; retry shortly"
            response = error_response(
                503, ErrorCode.SERVICE_UNAVAILABLE, message, headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            semaphore.release()


class EdgeGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        settings = get_settings()
        self.caps = BodyCaps.from_settings(settings)
        self.admission = PublicAdmission(
            settings.public_max_concurrency, settings.public_admission_timeout_s
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        limit = self.caps.for_path(path)
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            message = f"request body of {declared} bytes exceeds the limit of {limit} bytes"
            await error_response(413, ErrorCode.PAYLOAD_TOO_LARGE, message)(scope, receive, send)
            return
        problem = await _auth_problem(path, headers)
        if problem:
            await error_response(401, ErrorCode.UNAUTHORIZED, problem)(scope, receive, send)
            return
        capped: Receive = _capped_receive(receive, limit)  # type: ignore[assignment]
        if path.startswith("/v1/"):
            await self.admission.run(self.app, scope, capped, send)
        else:
            await self.app(scope, capped, send)
