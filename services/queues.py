"""Queue names of the topology fixed by the design brief."""

from __future__ import annotations

INGEST_QUEUE = "ingest"
MAINTENANCE_QUEUE = "maintenance"
PRIORITIES = (1, 2, 3, 4)  # 1 urgent, 2 high, 3 normal, 4 low
DEFAULT_PRIORITY = 3


def scrape_queue_name(platform: str, priority: int) -> str:
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {PRIORITIES}, got {priority}")
    return f"scrape.{platform}.p{priority}"


def scrape_queue_names(platforms: list[str]) -> list[str]:
    """Every scrape queue of the platforms, in strict priority order (all p1 first)."""
    return [scrape_queue_name(platform, p) for p in PRIORITIES for platform in platforms]
