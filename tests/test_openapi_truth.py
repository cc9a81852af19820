"""The OpenAPI tells the truth about errors: every route's error paths are driven against the
live app (no credential, a wrong one, another worker's id, unknown ids, malformed parameters
and bodies, an oversized body, an emptied token bucket), and the statuses seen must be exactly
the ones the route documents, each answered in the documented envelope.

A few statuses need a state that a generic probe cannot make (a lease held by another worker,
a tier without the feature): ``NEEDS_STATE`` names them, and the tests below reach each one.
500 and 503 (a bug, every connection busy) are documented everywhere and reached nowhere here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.public.quotas import quota_counter_key, today_utc
from services.public.tiers import ANONYMOUS_TIER, Feature, get_tier
from settings import get_settings
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, flush_redis_keeping_bindings
from tests.dispatch_helpers import enqueue
from tests.public_factories import ParcelSpec, add_api_key, add_parcels

SECOND_WORKER_TOKEN = "second-worker-token"
WORKER_ID = "truth-worker"
NEVER_PROBED = {500, 503}
# Statuses only a particular state reaches, by operation; each is reached in a test below.
NEEDS_STATE: dict[str, set[int]] = {
    "POST /internal/tasks/{task_id}/complete": {409},
    "POST /internal/tasks/{task_id}/fail": {409},
    "POST /internal/tasks/{task_id}/extend": {409},
    "POST /admin/tasks/{task_id}/cancel": {409},
    "POST /admin/platforms": {409},
    "GET /v1/properties/{parcel_id}": {409},
}
for _route in (
    "GET /v1/parcels/{state}/{county}/{parcel_id}",
    "GET /v1/parcels/{state}/{county}/{parcel_id}/history",
    "GET /v1/properties/{parcel_id}", "GET /v1/properties", "GET /v1/search",
    "GET /v1/search/owner", "GET /v1/search/address", "GET /v1/top-lists/{strategy}",
):  # fmt: skip
    NEEDS_STATE.setdefault(_route, set()).add(403)  # a used-up daily quota
# Well-formed values naming nothing, where any text would be refused before the lookup.
PLAUSIBLE_PATH_VALUES = {"state": "FL", "county": "Dixie", "platform": "no_such_platform"}
# The daily quota of a feature, used up (each route below takes one).
QUOTA_ROUTES = (
    "/v1/parcels/FL/Dixie/no-such-thing", "/v1/parcels/FL/Dixie/no-such-thing/history",
    "/v1/properties/no-such-thing", "/v1/properties", "/v1/search", "/v1/search/owner?q=smith",
    "/v1/search/address?q=main", "/v1/top-lists/highest-due",
)  # fmt: skip
# A body that passes validation, where the route's 404 lies behind it.
VALID_BODIES = {
    "PATCH /admin/api-keys/{key_id}": {"tier": "free"},
    "POST /admin/workers/{worker_id}/commands": {"command": "pause"},
    "PUT /admin/rate-limits/{platform}": {"per_minute": 5},
    "PUT /admin/rate-limits/{platform}/{county}": {"per_minute": 5},
}


@dataclass
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    seen: set[int] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def documented(self) -> set[int]:
        return {int(status) for status in self.spec["responses"] if int(status) >= 400}

    @property
    def schemes(self) -> set[str]:
        return {name for requirement in self.spec.get("security", []) for name in requirement}

    def parameters(self, where: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == where]


def operations_of(app: FastAPI) -> list[Operation]:
    paths = app.openapi()["paths"]
    return [
        Operation(method, path, spec)
        for path, methods in paths.items()
        for method, spec in methods.items()
    ]


def unknown_value(schema: dict[str, Any]) -> str:
    """A well-formed value that names nothing."""
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return str(min(987_654_321, schema.get("maximum", 987_654_321)))
    if schema.get("pattern") == "^[0-9a-f]{64}$":
        return "0" * 64
    return "no-such-thing"


def malformed_value(schema: dict[str, Any]) -> str | None:
    """A value the parameter's schema refuses, or None when it accepts any text."""
    if schema.get("format") == "uuid" or schema.get("type") in {"integer", "number", "boolean"}:
        return "not-a-number"
    if "enum" in schema or "pattern" in schema:
        return "not-one-of-them"
    if "maxLength" in schema:
        return "x" * (int(schema["maxLength"]) + 1)
    return None


def schema_of(parameter: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = parameter.get("schema", {})
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            schema = option
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


class Prober:
    def __init__(self, client: TestClient, spec: dict[str, Any], api_key: str) -> None:
        self.client, self.spec = client, spec
        self.valid = {
            "WorkerToken": {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": WORKER_ID},
            "AdminToken": {"X-Admin-Token": ADMIN_TOKEN},
            "ApiKey": {"X-API-Key": api_key},
        }

    def credentials(self, op: Operation) -> dict[str, str]:
        headers: dict[str, str] = {}
        for scheme in op.schemes & set(self.valid):
            headers.update(self.valid[scheme])
        return headers

    def path(self, op: Operation, overrides: dict[str, str] | None = None) -> str:
        path = op.path
        for parameter in op.parameters("path"):
            name = parameter["name"]
            value = (
                (overrides or {}).get(name)
                or PLAUSIBLE_PATH_VALUES.get(name)
                or unknown_value(schema_of(parameter, self.spec))
            )
            path = path.replace("{" + name + "}", value)
        return path

    def call(self, op: Operation, *, headers: dict[str, str], path: str | None = None,
             params: dict[str, str] | None = None, **body: Any) -> int:  # fmt: skip
        response = self.client.request(
            op.method, path or self.path(op), headers=headers, params=params, **body
        )
        status = response.status_code
        if status >= 400:
            payload = response.json()
            assert set(payload) >= {"error", "request_id"}, (op.label, response.text[:300])
            assert {"code", "message"} <= set(payload["error"]), (op.label, response.text[:300])
            assert response.headers["x-request-id"] == payload["request_id"], op.label
        op.seen.add(status)
        return int(status)

    def probe(self, op: Operation) -> None:
        valid = self.credentials(op)
        self.call(op, headers=valid)
        self.call(op, headers={})
        if op.schemes & {"WorkerToken", "AdminToken", "ApiKey"}:
            wrong = {name: "wrong-credential" for name in valid if name != "X-Worker-ID"}
            self.call(op, headers={**valid, **wrong})
        if "WorkerToken" in op.schemes:
            self.call(op, headers={**valid, "X-Worker-Token": SECOND_WORKER_TOKEN})
            self.call(op, headers={**valid, "X-Worker-ID": "not a worker id!"})
        if "ApiKey" in op.schemes:
            self.call(op, headers={**valid, "X-API-Key": "k" * 300})
        for parameter in op.parameters("path"):
            bad = malformed_value(schema_of(parameter, self.spec))
            if bad is not None:
                self.call(op, headers=valid, path=self.path(op, {parameter["name"]: bad}))
        for parameter in op.parameters("query"):
            bad = malformed_value(schema_of(parameter, self.spec))
            if bad is not None:
                self.call(op, headers=valid, params={parameter["name"]: bad})
        if op.method in {"post", "patch", "put"}:
            self.probe_bodies(op, valid)
        if op.label in VALID_BODIES:
            self.call(op, headers=valid, json=VALID_BODIES[op.label])

    def probe_bodies(self, op: Operation, valid: dict[str, str]) -> None:
        json_type = {**valid, "Content-Type": "application/json"}
        self.call(op, headers=json_type, content=b"{not json")
        self.call(op, headers=json_type, content=b"{}")
        self.call(op, headers=json_type, content=b"[]")
        # Declared over every cap: refused before a byte is read.
        oversized = {**json_type, "Content-Length": str(10**12)}
        self.call(op, headers=oversized, content=b"{}")


@pytest.fixture
def probed(api_app: FastAPI, db_session: Session) -> Iterator[list[Operation]]:
    operations = operations_of(api_app)
    api_key = add_api_key(db_session, "enterprise").key
    db_session.commit()
    with TestClient(api_app, raise_server_exceptions=False) as client:
        prober = Prober(client, api_app.openapi(), api_key)
        for op in operations:
            # Each operation starts with full token buckets: its 401s are not hidden by 429s.
            flush_redis_keeping_bindings(get_settings().cache_url)
            prober.probe(op)
        # An emptied anonymous bucket: every public route answers 429.
        public = [op for op in operations if "ApiKey" in op.schemes]
        for _ in range(get_tier(ANONYMOUS_TIER).burst + 1):
            prober.call(public[0], headers={})
        for op in public:
            prober.call(op, headers={})
        yield operations


def test_every_status_a_route_answers_is_documented(probed: list[Operation]) -> None:
    undocumented = {
        op.label: sorted(errors)
        for op in probed
        if (errors := {status for status in op.seen if status >= 400} - op.documented)
    }
    assert undocumented == {}


def test_every_documented_status_is_one_the_route_answers(probed: list[Operation]) -> None:
    unreached = {
        op.label: sorted(missing)
        for op in probed
        if (missing := op.documented - op.seen - NEVER_PROBED - NEEDS_STATE.get(op.label, set()))
    }
    assert unreached == {}


def test_statuses_that_need_a_state_are_documented(api_app: FastAPI) -> None:
    by_label = {op.label: op for op in operations_of(api_app)}
    for label, statuses in NEEDS_STATE.items():
        assert statuses <= by_label[label].documented, label


def test_every_error_is_the_one_envelope_model_and_every_operation_has_a_summary(
    api_app: FastAPI,
) -> None:
    spec = api_app.openapi()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    tags = {tag["name"] for tag in spec["tags"]}
    for op in operations_of(api_app):
        assert op.spec.get("summary") and op.spec["tags"][0] in tags, op.label
        for status in op.documented:
            if op.label == "GET /health/ready" and status == 503:
                continue  # readiness names what is down in its own shape
            content = op.spec["responses"][str(status)]["content"]["application/json"]
            assert content["schema"] == envelope, (op.label, status)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert set(spec["components"]["securitySchemes"]) == {
        "WorkerToken", "AdminToken", "ApiKey", "ApiKeyBearer",
    }  # fmt: skip


def assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) >= {"error", "request_id"}


@pytest.mark.broker
def test_a_lease_held_by_another_worker_is_a_409_on_complete_fail_and_extend(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    (task_id,) = enqueue(api_client, admin_headers, ["12-34-56"])
    holder = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "holder"}
    other = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "someone-else"}
    leased = api_client.get("/internal/work", params={"platforms": "demo"}, headers=holder)
    assert [task["task_id"] for task in leased.json()["tasks"]] == [str(task_id)]
    for action in ("extend", "fail", "complete"):
        assert_error(api_client.post(f"/internal/tasks/{task_id}/{action}", headers=other), 409)


@pytest.mark.broker
def test_cancelling_twice_and_creating_a_platform_twice_are_409s(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    (task_id,) = enqueue(api_client, admin_headers, ["12-34-57"])
    cancel = f"/admin/tasks/{task_id}/cancel"
    assert api_client.post(cancel, headers=admin_headers).status_code == 200
    assert_error(api_client.post(cancel, headers=admin_headers), 409)
    created = api_client.post("/admin/platforms", json={"name": "demo"}, headers=admin_headers)
    assert_error(created, 409)


def test_an_ambiguous_property_id_is_a_409(api_client: TestClient, db_session: Session) -> None:
    add_parcels(
        db_session, [ParcelSpec(county=county, parcel_id="77-1") for county in ("Dixie", "Levy")]
    )
    assert_error(api_client.get("/v1/properties/77-1"), 409)


def test_a_used_up_daily_quota_is_a_403_on_every_route_that_takes_one(
    api_client: TestClient, db_session: Session, redis_client: Any
) -> None:
    issued = add_api_key(db_session, "free")
    for feature in Feature:
        # This key's counter of every feature far past any limit.
        key = quota_counter_key(f"key:{issued.record.id}", feature, today_utc())
        redis_client.set(key, 10**9)
    for route in QUOTA_ROUTES:
        assert_error(api_client.get(route, headers={"X-API-Key": issued.key}), 403)
