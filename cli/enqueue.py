"""``gatewayctl enqueue FILE``: enqueue a CSV or a plain list of parcel ids, with a progress
bar and a summary (enqueued / already active / invalid, by line); non-zero exit when a line
was rejected."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import click
from tqdm import tqdm

from cli.admin_api import admin_api
from services.dispatch.enqueue import EnqueueRequest, ItemStatus

CSV_COLUMNS = ("platform", "state", "county", "parcel_id", "url", "priority")


@dataclass(frozen=True)
class Line:
    number: int
    request: EnqueueRequest | None
    error: str | None = None


@dataclass(frozen=True)
class Defaults:
    platform: str | None
    state: str | None
    county: str | None
    priority: int | None


def _plain_lines(path: Path, defaults: Defaults) -> Iterator[Line]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, raw in enumerate(handle, start=1):
            value = raw.strip()
            if not value or value.startswith("#"):
                continue
            yield _line(number, {"parcel_id": value}, defaults)


def _csv_lines(path: Path, defaults: Defaults) -> Iterator[Line]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if "parcel_id" not in (reader.fieldnames or []):
            raise click.ClickException(f"{path}: a CSV needs a parcel_id column")
        for row in reader:
            yield _line(reader.line_num, row, defaults)


def _line(number: int, row: dict[str, str | None], defaults: Defaults) -> Line:
    def pick(column: str, fallback: str | None) -> str:
        return (row.get(column) or "").strip() or (fallback or "")

    missing = [c for c in ("platform", "state", "county") if not pick(c, getattr(defaults, c))]
    if missing:
        return Line(number, None, f"no {', '.join(missing)} (column or option)")
    raw_priority = pick("priority", None)
    try:
        priority = int(raw_priority) if raw_priority else defaults.priority
    except ValueError:
        return Line(number, None, f"priority {raw_priority!r} is not a number")
    request = EnqueueRequest(
        platform=pick("platform", defaults.platform),
        state=pick("state", defaults.state),
        county=pick("county", defaults.county),
        parcel_id=pick("parcel_id", None),
        url=pick("url", None) or None,
        priority=priority,
    )
    return Line(number, request)


def read_lines(path: Path, defaults: Defaults) -> list[Line]:
    with path.open(encoding="utf-8-sig") as handle:
        first = handle.readline()
    header = [column.strip().lower() for column in next(csv.reader([first]), [])]
    is_csv = path.suffix.lower() == ".csv" or "parcel_id" in header
    return list((_csv_lines if is_csv else _plain_lines)(path, defaults))


def _enqueue_batch(requests: list[EnqueueRequest]) -> list[tuple[int, ItemStatus, str]]:
    """Each request's (index, status, error), through the admin API or straight to the ledger."""
    api = admin_api()
    if api is not None:
        body = api.post("/admin/tasks", {"tasks": [asdict(request) for request in requests]})
        return [
            (item["index"], ItemStatus(item["status"]), item["error"] or "")
            for item in body["items"]
        ]
    from services.dispatch.broker_client import enqueue_and_publish

    report = enqueue_and_publish(requests)
    return [(o.index, o.status, o.error or "") for o in report.outcomes]


@click.command("enqueue")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--platform", help="Platform for rows without one (e.g. qpublic).")
@click.option("--state", help="State for rows without one (e.g. FL).")
@click.option("--county", help="County for rows without one (e.g. dixie).")
@click.option("--priority", type=click.IntRange(1, 4), help="1 urgent … 4 low; default 3.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.pass_context
def enqueue_command(
    ctx: click.Context,
    path: Path,
    platform: str | None,
    state: str | None,
    county: str | None,
    priority: int | None,
    batch_size: int,
) -> None:
    """Enqueue the parcels of PATH (a CSV with a parcel_id column, or one id a line).

    Exits with status 1 when any line was rejected, after a summary of why.
    """
    lines = read_lines(path, Defaults(platform, state, county, priority))
    counts = {status: 0 for status in ItemStatus}
    problems = [(line.number, line.error or "") for line in lines if line.request is None]
    counts[ItemStatus.INVALID] = len(problems)
    valid = [line for line in lines if line.request is not None]
    with tqdm(total=len(valid), unit="task", desc="enqueue", disable=None) as progress:
        for start in range(0, len(valid), batch_size):
            batch = valid[start : start + batch_size]
            outcomes = _enqueue_batch([line.request for line in batch if line.request])
            for index, status, error in outcomes:
                counts[status] += 1
                if status is ItemStatus.INVALID:
                    problems.append((batch[index].number, error))
            progress.update(len(batch))
    click.echo(
        f"enqueued {counts[ItemStatus.ENQUEUED]}, "
        f"already active {counts[ItemStatus.ALREADY_ACTIVE]}, "
        f"invalid {counts[ItemStatus.INVALID]}"
    )
    if not problems:
        return
    reasons = Counter(_reason_kind(error) for _, error in problems)
    summary = ", ".join(f"{reason} ({n})" for reason, n in reasons.most_common())
    click.echo(f"rejected {len(problems)} lines: {summary}")
    for number, error in sorted(problems):
        click.echo(f"  line {number}: {error}")
    ctx.exit(1)


def _reason_kind(error: str) -> str:
    """The error without the line's own value (``unknown platform 'x'`` → ``unknown platform``),
    so the summary counts kinds of problem, not values."""
    return error.split(" '", 1)[0].split(' "', 1)[0]
