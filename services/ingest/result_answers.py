"""What ``POST /internal/results`` answers: the original gateway's shape, or the async one.

The original's clients send no ``Prefer`` header and read ``{inserted, updated, failed,
errors: ["<parcel_id>: <reason>"]}`` once the results are written. A client that asks for
``Prefer: respond-async`` (RFC 7240) gets ``{accepted, failed, errors: [{index, reason}]}``
at once instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.text_checks import text_problem

RESPOND_ASYNC = "respond-async"
_MAX_LABEL_CHARS = 128


def prefers_respond_async(prefer_headers: Iterable[str]) -> bool:
    """Whether any ``Prefer`` header names ``respond-async`` (any case, among others)."""
    for header in prefer_headers:
        for preference in header.split(","):
            token = preference.split(";", 1)[0].split("=", 1)[0]
            if token.strip().lower() == RESPOND_ASYNC:
                return True
    return False


def item_label(raw: object, index: int) -> str:
    """How an error names an item: its parcel id when it has a text one, else its index."""
    parcel_id = raw.get("parcel_id") if isinstance(raw, dict) else None
    if isinstance(parcel_id, str) and parcel_id.strip():
        label = parcel_id.strip()[:_MAX_LABEL_CHARS]
        if text_problem(label) is None:
            return label
    return f"item {index}"


@dataclass(frozen=True)
class RefusedItem:
    """An item that was not written: refused at validation or recorded in ingest_rejects."""

    index: int  # in the request body
    label: str
    reason: str


@dataclass(frozen=True)
class IngestSummary:
    """The original's answer (inserted, updated, failed, errors) and what this gateway adds."""

    inserted: int
    updated: int
    unchanged: int
    stale: int
    failed: int
    ingest_failed: int
    errors: list[str]
    errors_omitted: int


def summarise_ingest(
    totals: Mapping[str, int],
    refused: Sequence[RefusedItem],
    *,
    ingest_failed: int,
    max_errors: int,
) -> IngestSummary:
    """Every item counted once: written (by outcome) or failed, with ``<label>: <reason>``."""
    shown = sorted(refused, key=lambda item: item.index)[:max_errors]
    return IngestSummary(
        inserted=totals.get("inserted", 0),
        updated=totals.get("updated", 0),
        unchanged=totals.get("unchanged", 0),
        stale=totals.get("stale", 0),
        failed=len(refused),
        ingest_failed=ingest_failed,
        errors=[f"{item.label}: {item.reason}" for item in shown],
        errors_omitted=len(refused) - len(shown),
    )
