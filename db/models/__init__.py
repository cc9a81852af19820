"""All models, imported so ``Base.metadata`` is complete for Alembic and the tests."""

from db.models.ledger import ACTIVE_STATUSES, FINAL_STATUSES, Platform, ScrapeTask, TaskStatus
from db.models.parcels import Parcel, ParcelSnapshot
from db.models.raw_files import RawFile

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Parcel",
    "ParcelSnapshot",
    "Platform",
    "RawFile",
    "ScrapeTask",
    "TaskStatus",
]
