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


def scrape_message(task: ScrapeTask) -> ScrapeMessage:
    return build_scrape_message(
        task.id,
        platform=task.platform,
        state=task.state,
        county=task.county,
        parcel_id=task.parcel_id,
        url=task.url,
        priority=task.priority,
    )


def build_scrape_message(
    task_id: uuid.UUID,
    *,
    platform: str,
    state: str,
    county: str,
    parcel_id: str,
    url: str | None,
    priority: int,
) -> ScrapeMessage:
    """The message of a ledger row, from its values (enqueue has them without loading the row).

    The envelope is the JSON a scraper receives (Celery argument and, reshaped, the HTTP
    WorkTask).
    """
    envelope = {
        "task_id": str(task_id),
        "type": TASK_TYPE,
        "platform": platform,
        "state": state,
        "county": county,
        "parcel_id": parcel_id,
        "url": url,
        "priority": priority,
    }
    return ScrapeMessage(task_id, scrape_queue_name(platform, priority), envelope)
