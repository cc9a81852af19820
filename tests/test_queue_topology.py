"""Which queues a Celery worker of this codebase consumes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db.models import Platform
from services.queue_topology import worker_queue_names


def test_a_worker_consumes_only_platforms_it_can_scrape_in_priority_order(
    db_session: Session,
) -> None:
    db_session.add(Platform(name="newcounty"))
    db_session.flush()

    queues = worker_queue_names(db_session)

    assert queues == [
        "ingest", "maintenance",
        "scrape.demo.p1", "scrape.demo.p2", "scrape.demo.p3", "scrape.demo.p4",
    ]  # fmt: skip


def test_named_platforms_override_the_default(db_session: Session) -> None:
    queues = worker_queue_names(db_session, platforms=["qpublic", "demo"])

    assert queues[:2] == ["ingest", "maintenance"]
    assert queues[2:6] == [
        "scrape.qpublic.p1",
        "scrape.demo.p1",
        "scrape.qpublic.p2",
        "scrape.demo.p2",
    ]
