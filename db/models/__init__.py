"""All models, imported so ``Base.metadata`` is complete for Alembic and the tests."""

from db.models.ledger import ACTIVE_STATUSES, FINAL_STATUSES, Platform, ScrapeTask, TaskStatus
from db.models.parcels import Parcel, ParcelSnapshot

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "Parcel",
    "ParcelSnapshot",
    "Platform",
    "ScrapeTask",
    "TaskStatus",
]
