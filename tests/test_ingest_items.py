"""Validation of result items: whatever one item holds, it is that item's error alone."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest import items as item_validation
from services.ingest import validate_result_items
from tests.test_ingest_batch import result_item


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_deeply_nested_data_rejects_only_its_item() -> None:
    deep = result_item("2", data={"owner": _nested(100_000)})

    valid, errors = validate_result_items([result_item("1"), deep])

    assert len(valid) == 1
    assert [(e.index, e.reason) for e in errors] == [(1, "data: nested too deeply")]


@pytest.mark.parametrize(
    ("duration", "reason"),
    [(10**400, "too large"), (float("inf"), "finite")],
    ids=["400 digits", "infinite"],
)
def test_an_absurd_parse_duration_rejects_only_its_item(duration: object, reason: str) -> None:
    valid, errors = validate_result_items(
        [result_item("1"), result_item("2", parse_duration_ms=duration)]
    )

    assert len(valid) == 1
    assert [e.index for e in errors] == [1] and reason in errors[0].reason


def test_an_unexpected_error_in_one_item_is_that_items_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(value: object) -> str:
        if value == "broken":
            raise KeyError(value)
        return "qpublic"

    monkeypatch.setattr(item_validation, "check_platform", broken)

    valid, errors = validate_result_items([result_item("1"), result_item("2", platform="broken")])

    assert len(valid) == 1
    assert [(e.index, e.reason) for e in errors] == [(1, "item could not be validated (KeyError)")]
