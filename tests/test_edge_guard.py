"""Bodies are capped and tokens checked before a byte of the body is read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN

MIB = 1024 * 1024


def call_with_streamed_body(
    app: FastAPI, path: str, headers: dict[str, str], *, total_bytes: int
) -> tuple[int, dict[str, Any], int]:
    """POST ``total_bytes`` to ``app`` in 64 KiB chunks without a Content-Length, as a client
    that streams; returns the status, the JSON answer and how many body bytes the app read."""
    chunk = b" " * (64 * 1024)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= total_bytes:
            return {"type": "http.disconnect"}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": read < total_bytes}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_a_30_mib_body_without_a_token_is_refused_before_it_is_read(api_app: FastAPI) -> None:
    for path in ("/internal/heartbeat", "/internal/tasks/complete", "/admin/tasks"):
        status, answer, read = call_with_streamed_body(api_app, path, {}, total_bytes=30 * MIB)
        assert (status, answer["error"]["code"], read) == (401, "UNAUTHORIZED", 0), path


def test_invalid_json_without_a_token_is_a_401_not_a_422(api_client: TestClient) -> None:
    for path in ("/internal/heartbeat", "/admin/tasks", "/admin/dead-letters/purge"):
        response = api_client.post(path, content=b"{not json", headers={"X-Worker-ID": "w"})
        assert response.status_code == 401, (path, response.text)


def test_a_body_over_the_default_cap_is_a_413_envelope_read_no_further_than_the_cap(
    api_app: FastAPI, api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    declared = api_client.post(
        "/internal/heartbeat",
        content=b" " * (300 * 1024) + b"{}",
        headers={**worker_headers, "Content-Type": "application/json"},
    )
    assert declared.status_code == 413 and declared.headers["X-Request-ID"]
    assert declared.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    status, answer, read = call_with_streamed_body(
        api_app, "/internal/heartbeat", worker_headers, total_bytes=30 * MIB
    )
    assert (status, answer["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert read <= 256 * 1024 + 64 * 1024


def test_results_and_admin_batches_keep_their_larger_caps(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    padded_empty_list = b"[" + b" " * (1 * MIB) + b"]"
    results = api_client.post(
        "/internal/results",
        content=padded_empty_list,
        headers={**worker_headers, "Content-Type": "application/json"},
    )
    assert results.status_code == 200, results.text  # nothing to ingest: the original's answer
    enqueue = api_client.post(
        "/admin/tasks",
        content=b'{"tasks": [' + b" " * (1 * MIB) + b"]}",
        headers={"X-Admin-Token": ADMIN_TOKEN, "Content-Type": "application/json"},
    )
    assert enqueue.status_code == 200, enqueue.text
    assert WORKER_TOKEN in worker_headers.values()


def test_an_unknown_http_method_is_counted_as_other(api_client: TestClient) -> None:
    for method in ("ANYTHING", "X-CARDINALITY-1", "PROPFIND"):
        assert api_client.request(method, "/health").status_code == 405
    metrics = api_client.get("/metrics").text
    assert "ANYTHING" not in metrics and "X-CARDINALITY-1" not in metrics
    assert 'method="OTHER"' in metrics
