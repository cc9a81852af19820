"""Examples for the worker routes' OpenAPI: what a worker sends and gets back, end to end for
one task (the same task id, lease token and parcel throughout)."""

from __future__ import annotations

from typing import Any

from pydantic.config import JsonDict

TASK_ID = "0b9f3c1e-6d2a-4f5b-9c8e-7a1d2e3f4a5b"
LEASE_TOKEN = 7

WORK: JsonDict = {
    "tasks": [
        {
            "task_id": TASK_ID,
            "type": "scrape_parcel",
            "platform": "qpublic",
            "target": {
                "parcel_id": "01-08-13-0000-3634-1100",
                "state": "FL",
                "county": "dixie",
                "url": None,
            },
            "priority": 3,
            "created_at": "2026-11-30T14:00:00Z",
            "attempt": 1,
            "lease_expires_at": "2026-11-30T14:05:00Z",
            "lease_token": LEASE_TOKEN,
            "proxy": None,
        }
    ],
    "retry_after": 0,
}
LEASE_REF: JsonDict = {"lease_token": LEASE_TOKEN}
FAIL: JsonDict = {
    "lease_token": LEASE_TOKEN,
    "reason": "platform_down",
    "message": "HTTP 503 from the county site",
    "retry_suggested": True,
}
EXTEND: JsonDict = {"lease_token": LEASE_TOKEN, "extend_s": 300}
BATCH_COMPLETE: JsonDict = {"tasks": [{"task_id": TASK_ID, "lease_token": LEASE_TOKEN}]}
HEARTBEAT: JsonDict = {
    "active_tasks": 3,
    "completed_last_minute": 12,
    "failed_last_minute": 1,
    "platforms": ["qpublic"],
    "cpu_percent": 41.5,
    "memory_percent": 63.0,
}
RESULTS: list[JsonDict] = [
    {
        "task_id": TASK_ID,
        "parcel_id": "01-08-13-0000-3634-1100",
        "platform": "qpublic",
        "state": "FL",
        "county": "dixie",
        "data": {"owner_name": "ROE RICHARD", "total_due_amount": "$1,234.56"},
        "scraped_at": "2026-11-30T14:02:10Z",
        "parse_duration_ms": 180,
        "raw_html_hash": "9f" * 32,
    }
]

# /internal/results reads its body itself (each item validated alone), so it is described here.
RESULTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": "Each item is validated on its own: an invalid one is"
                    " reported in `errors` and the valid ones are still accepted",
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "parcel_id",
                            "platform",
                            "state",
                            "county",
                            "data",
                            "scraped_at",
                        ],
                        "properties": {
                            "task_id": {"type": ["string", "null"], "format": "uuid"},
                            "parcel_id": {"type": "string"},
                            "platform": {"type": "string"},
                            "state": {"type": "string"},
                            "county": {"type": "string"},
                            "data": {"type": "object"},
                            "scraped_at": {"type": "string", "format": "date-time"},
                            "parse_duration_ms": {"type": "integer"},
                            "raw_html_hash": {"type": ["string", "null"]},
                        },
                    },
                },
                "example": RESULTS,
            }
        },
    }
}


def json_example(example: object) -> dict[str, Any]:
    """A ``responses=`` entry (or ``json_schema_extra``) showing ``example`` as JSON."""
    return {"content": {"application/json": {"example": example}}}
