"""All models, imported so ``Base.metadata`` is complete for Alembic and the tests."""

from db.models.api_keys import ApiKey
from db.models.fleet import LEASE_TOKEN_SEQUENCE, Worker, WorkerCommand, WorkerCommandKind
from db.models.ingest_rejects import IngestReject, RejectReason
from db.models.ledger import (
    ACTIVE_STATUSES,
    ACTIVE_STATUSES_SQL,
    FINAL_STATUSES,
    Platform,
    ScrapeTask,
    TaskStatus,
)
from db.models.parcel_search import SEARCH_INDEXES
from db.models.parcels import Parcel, ParcelSnapshot
from db.models.rate_limits import RateLimit
from db.models.raw_files import RawFile
from db.models.result_outbox import ResultOutbox
from db.models.worker_credentials import WorkerCredential, WorkerIdentityClaim

__all__ = [
    "ACTIVE_STATUSES",
    "ACTIVE_STATUSES_SQL",
    "FINAL_STATUSES",
    "LEASE_TOKEN_SEQUENCE",
    "SEARCH_INDEXES",
    "ApiKey",
    "IngestReject",
    "Parcel",
    "ParcelSnapshot",
    "Platform",
    "RateLimit",
    "RawFile",
    "RejectReason",
    "ResultOutbox",
    "ScrapeTask",
    "TaskStatus",
    "Worker",
    "WorkerCommand",
    "WorkerCommandKind",
    "WorkerCredential",
    "WorkerIdentityClaim",
]
