"""What a scrape message carries and where it goes: the task envelope and its queue."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from db.models import ScrapeTask
from services.queues import scrape_queue_name

SCRAPE_TASK_NAME = "scrape.parcel"
TASK_TYPE = "parcel"


@dataclass(frozen=True)
class ScrapeMessage:
    """One message to publish: the ledger id doubles as the Celery task id."""

    task_id: uuid.UUID
    queue: str
    envelope: dict[str, Any]


def task_envelope(task: ScrapeTask) -> dict[str, Any]:
    """The JSON a scraper receives (Celery argument and, reshaped, the HTTP WorkTask)."""
    return {
        "task_id": str(task.id),
        "type": TASK_TYPE,
        "platform": task.platform,
        "state": task.state,
        "county": task.county,
        "parcel_id": task.parcel_id,
        "url": task.url,
        "priority": task.priority,
    }


def scrape_message(task: ScrapeTask) -> ScrapeMessage:
    return ScrapeMessage(
        task_id=task.id,
        queue=scrape_queue_name(task.platform, task.priority),
        envelope=task_envelope(task),
    )
