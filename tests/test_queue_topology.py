"""Which queues the Celery workers of this codebase consume."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy.orm import Session

from cli.main import main
from db.models import Platform
from services.queue_topology import scrape_worker_queue_names


def test_a_scrape_worker_takes_only_platforms_it_can_scrape_in_priority_order(
    db_session: Session,
) -> None:
    db_session.add(Platform(name="newcounty"))
    db_session.flush()

    queues = scrape_worker_queue_names(db_session)

    assert queues == ["scrape.demo.p1", "scrape.demo.p2", "scrape.demo.p3", "scrape.demo.p4"]


def test_named_platforms_override_the_default(db_session: Session) -> None:
    queues = scrape_worker_queue_names(db_session, platforms=["qpublic", "demo"])

    assert queues[:4] == [
        "scrape.qpublic.p1",
        "scrape.demo.p1",
        "scrape.qpublic.p2",
        "scrape.demo.p2",
    ]


def test_the_cli_prints_scrape_and_service_queues_separately() -> None:
    runner = CliRunner()

    scrape = runner.invoke(main, ["queues"])
    service = runner.invoke(main, ["queues", "--service"])

    assert scrape.output.strip() == "scrape.demo.p1,scrape.demo.p2,scrape.demo.p3,scrape.demo.p4"
    assert service.output.strip() == "ingest,maintenance"
