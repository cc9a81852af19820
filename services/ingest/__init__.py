"""Results ingestion: item validation, typed values, the batch upsert, history, raw files.

``ingest_result_items(session, raw_items)`` is the entry point the ingest task and the
tests use; ``parcel_history(session, parcel_id)`` lists what changed between scrapes.
"""

from services.ingest.batch import IngestOutcome, ingest_items, ingest_result_items
from services.ingest.history import FieldChange, HistoryEntry, find_parcel_id, parcel_history
from services.ingest.items import ItemError, ResultItem, validate_result_items

__all__ = [
    "FieldChange",
    "HistoryEntry",
    "IngestOutcome",
    "ItemError",
    "ResultItem",
    "find_parcel_id",
    "ingest_items",
    "ingest_result_items",
    "parcel_history",
    "validate_result_items",
]
