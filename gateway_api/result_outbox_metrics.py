"""The result outbox for ``/metrics``: accepted results not yet written, and the oldest's age.

Rows normally live for the ingest's latency (well under a second); an age past
GATEWAY_RESULT_OUTBOX_GRACE_S means messages the broker lost (the job re-sends them) or an
ingest that is not keeping up. Read at scrape time, at most once per GATEWAY_METRICS_CACHE_S.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from db.session import session_scope
from gateway_api.timed_cache import TimedCache
from services.ingest.outbox import OutboxBacklog, read_outbox_backlog
from settings import get_settings

logger = logging.getLogger(__name__)


def _read_backlog() -> tuple[OutboxBacklog, datetime]:
    with session_scope() as session:
        return read_outbox_backlog(session), datetime.now(UTC)


_backlog = TimedCache(_read_backlog, max_age_s=lambda: get_settings().metrics_cache_s)


class ResultOutboxCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            backlog, now = _backlog.get()
        except SQLAlchemyError as exc:
            logger.warning("result outbox metrics unavailable: %s", exc)
            return
        yield from result_outbox_metric_families(backlog, now)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering the collector does not query the database.
        yield from result_outbox_metric_families(OutboxBacklog(0, None), datetime.now(UTC))


def result_outbox_metric_families(
    backlog: OutboxBacklog, now: datetime
) -> Iterator[GaugeMetricFamily]:
    age_s = (now - backlog.oldest_created_at).total_seconds() if backlog.oldest_created_at else 0
    yield GaugeMetricFamily(
        "gateway_result_outbox_messages",
        "Accepted result messages not yet written by the ingest; global: aggregate with max",
        value=backlog.messages,
    )
    yield GaugeMetricFamily(
        "gateway_result_outbox_oldest_age_seconds",
        "Age of the oldest accepted result message not yet written (0: none); past "
        "GATEWAY_RESULT_OUTBOX_GRACE_S it is re-sent; global: aggregate with max",
        value=max(age_s, 0.0),
    )
