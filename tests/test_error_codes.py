"""Error codes in the original gateway's spelling, on every route, and in the OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.errors import ErrorCode, ServiceError
from tests.test_api_basics import assert_envelope

# The codes of the original's error table (contract §1.2) plus TIER_LIMIT_EXCEEDED (§1.12).
ORIGINAL_CODES = {
    "INVALID_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "RATE_LIMIT_EXCEEDED", "NOT_FOUND",
    "VALIDATION_ERROR", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIER_LIMIT_EXCEEDED",
}  # fmt: skip


def test_the_original_codes_are_all_ours_and_every_code_is_upper_snake() -> None:
    codes = {code.value for code in ErrorCode}
    assert codes >= ORIGINAL_CODES
    assert all(code.isupper() and " " not in code for code in codes)


def test_every_operation_documents_the_error_envelope(api_app: FastAPI) -> None:
    schema = api_app.openapi()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 30
    for path, method, operation in operations:
        responses: dict[str, Any] = operation["responses"]
        # Each status the route can answer (tests/test_openapi_truth.py checks which).
        errors = [status for status in responses if int(status) >= 400]
        assert "500" in errors, (method, path)
        for status in errors:
            if (path, status) == ("/health/ready", "503"):
                continue  # readiness names what is down in its own shape
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == envelope, (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    code_schema = schema["components"]["schemas"]["ErrorCode"]
    assert set(code_schema["enum"]) == {code.value for code in ErrorCode}


class _OldSpelling(ServiceError):
    status_code = 415
    code = "unsupported_media_type"


def test_a_service_error_in_the_old_spelling_answers_upper_snake(api_app: FastAPI) -> None:
    from gateway_api.app import create_app

    app = create_app()

    @app.get("/probe/old-code")
    def old_code() -> None:
        raise _OldSpelling("text/x-thing is not stored")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert_envelope(client.get("/probe/old-code"), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_route_level_errors_use_the_original_codes(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    assert_envelope(api_client.get("/internal/work"), 401, "UNAUTHORIZED")
    assert_envelope(api_client.get("/admin/tasks/balance"), 401, "UNAUTHORIZED")
    assert_envelope(api_client.get("/v1/parcels/FL/Dixie/nope"), 404, "NOT_FOUND")
    assert_envelope(api_client.get("/v1/search?limit=0"), 422, "VALIDATION_ERROR")
    assert_envelope(api_client.put("/health"), 405, "METHOD_NOT_ALLOWED")
