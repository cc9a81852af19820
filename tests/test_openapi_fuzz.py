"""An OpenAPI fuzz run (schemathesis) over every route, with valid credentials and without:
no answer is a 5xx, and every error is the JSON envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy.orm import Session

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.public_factories import add_api_key

# The worker routes lease from and publish to the broker: no 5xx on any broker either.
pytestmark = pytest.mark.broker

# Per operation, credential mode and generation mode (valid data, then invalid data): about
# 40 operations x 2 x 2 x 5 keeps the whole run well under a minute.
EXAMPLES_PER_OPERATION = 5
# Long polls and waits would only make the run slow: they are fuzzed up to a second.
_WAIT_PARAMETERS = ("wait",)


def assert_no_5xx_and_errors_are_envelopes(response: Any, label: str) -> None:
    status = response.status_code
    assert status < 500, f"{label}: {status} {response.text[:500]}"
    if status >= 400:
        body = response.json()
        assert set(body) == {"error", "request_id"}, f"{label}: {response.text[:500]}"
        assert isinstance(body["error"]["code"], str) and isinstance(
            body["error"]["message"], str
        ), label
    assert response.headers.get("x-request-id"), label


def _at_most_a_second(value: object) -> object:
    try:
        return min(float(value), 1.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return value  # not a number: refused with a 422 anyway


def fuzz_operation(operation: Any, call: Callable[[Any], Any], mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for name in _WAIT_PARAMETERS:
            if case.query and name in case.query:
                case.query[name] = _at_most_a_second(case.query[name])
        call(case)

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (an operation without parameters or body).
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.parametrize("credentials", ["valid", "none"])
def test_no_route_answers_a_5xx_or_a_non_envelope_error(
    api_app: FastAPI, db_session: Session, credentials: str
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    valid = {
        "X-Worker-Token": WORKER_TOKEN,
        "X-Worker-ID": "fuzz-worker",
        "X-Admin-Token": ADMIN_TOKEN,
        "X-API-Key": add_api_key(db_session, "enterprise").key,
    }
    # Every operation loads (an Err would raise here and fail the test with its reason).
    operations = [cast(Any, result).ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path} ({credentials} credentials)"

        def call(case: Any, label: str = label, path: str = operation.path) -> None:
            headers = dict(case.headers or {})
            if credentials == "valid":
                headers.update(valid)
            else:
                for name in valid:
                    headers.pop(name, None)
            if path == "/internal/results":
                # Valid results would wait for an ingest worker that this test does not run.
                headers["Prefer"] = "respond-async"
            case.headers = headers
            assert_no_5xx_and_errors_are_envelopes(case.call(), label)

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(operation, call, mode)
