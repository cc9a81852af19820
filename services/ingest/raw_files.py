"""Raw files: check an uploaded page, store it once by digest (gzipped where it pays), record
the upload with its task and parcel, and read it back for operators."""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RawFile
from services.errors import ErrorCode, InvalidInput, NotFound, ServiceError
from services.ingest.items import (
    ItemRejected,
    check_parcel_id,
    check_platform,
    check_scraped_at,
    check_task_id,
)
from services.ingest.raw_storage import RawFileStorage, check_digest
from services.ingest.raw_upload import ReceivedUpload
from services.parcel_identity import normalize_county, normalize_state, parcel_key

_COMPRESSIBLE = ("text/", "application/json", "application/xml", "application/xhtml+xml")
_MIN_COMPRESS_BYTES = 512
_MIN_SAVING = 0.10  # keep the gzip only if it is at least 10% smaller
T = TypeVar("T")


class UnsupportedMediaType(ServiceError):
    status_code = 415
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


@dataclass(frozen=True)
class RawFileMetadata:
    task_id: uuid.UUID | None = None
    platform: str | None = None
    state: str | None = None
    county: str | None = None
    parcel_id: str | None = None
    parcel_key: str | None = None
    content_type: str | None = None
    scraped_at: datetime | None = None


@dataclass(frozen=True)
class StoredRawFile:
    id: int
    sha256: str
    size_bytes: int
    stored_bytes: int
    is_compressed: bool
    is_duplicate: bool
    content_type: str


def parse_raw_file_metadata(raw: bytes | None) -> RawFileMetadata:
    """The optional ``metadata`` part; every field optional, each checked like a result item's."""
    if not raw:
        return RawFileMetadata()
    try:
        fields = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"metadata: not valid JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise InvalidInput("metadata: must be a JSON object")
    try:
        return _checked_metadata(fields)
    except ItemRejected as exc:
        raise InvalidInput(f"metadata: {exc}") from exc


def _checked_metadata(fields: dict[str, Any]) -> RawFileMetadata:
    content_type = fields.get("content_type")
    if content_type is not None and not isinstance(content_type, str):
        raise ItemRejected("content_type: must be text")
    parcel_id = _optional(fields, "parcel_id", check_parcel_id)
    try:
        state = _optional(fields, "state", normalize_state)
        county = _optional(fields, "county", normalize_county)
        key = parcel_key(parcel_id) if parcel_id else None
    except InvalidInput as exc:
        raise ItemRejected(exc.message) from exc
    now = datetime.now(UTC)
    return RawFileMetadata(
        task_id=check_task_id(fields.get("task_id")),
        platform=_optional(fields, "platform", check_platform),
        state=state,
        county=county,
        parcel_id=parcel_id,
        parcel_key=key,
        content_type=content_type,
        scraped_at=_optional(fields, "scraped_at", lambda v: check_scraped_at(v, now=now)),
    )


def _optional(fields: dict[str, Any], name: str, check: Callable[[Any], T]) -> T | None:
    value = fields.get(name)
    return None if value in (None, "") else check(value)


def resolve_content_type(declared: str | None, head: bytes, *, allowed: list[str]) -> str:
    """The declared media type (parameters dropped) if allowed and the bytes agree; sniffed
    from the first bytes when nothing useful is declared."""
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type in ("", "application/octet-stream"):
        media_type = _sniff(head)
    if media_type not in allowed:
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not accepted; allowed: {', '.join(allowed)}"
        )
    if media_type == "application/pdf" and not head.startswith(b"%PDF-"):
        raise UnsupportedMediaType("declared application/pdf but the file is not a PDF")
    if _is_text(media_type) and b"\x00" in head:
        raise UnsupportedMediaType(f"declared {media_type} but the file holds binary data")
    return media_type


def _sniff(head: bytes) -> str:
    start = head.lstrip()[:1]
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if start == b"<":
        return "text/html"
    if start in (b"{", b"["):
        return "application/json"
    return "application/octet-stream"


def _is_text(media_type: str) -> bool:
    return media_type.startswith(_COMPRESSIBLE)


def store_raw_file(
    session: Session,
    upload: ReceivedUpload,
    *,
    storage: RawFileStorage,
    allowed_types: list[str],
    worker_id: str | None,
) -> StoredRawFile:
    """Record the upload and store its bytes unless the same digest is already stored.

    Consumes ``upload.path`` (moved into storage or deleted). Flushes, never commits.
    """
    try:
        metadata = parse_raw_file_metadata(upload.metadata)
        declared = metadata.content_type or upload.part_content_type
        content_type = resolve_content_type(declared, upload.head, allowed=allowed_types)
        is_duplicate = storage.has(upload.sha256)
        stored_bytes, is_compressed = (
            _stored_size(session, upload.sha256, upload.size_bytes)
            if is_duplicate
            else _put(storage, upload, content_type)
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            upload.path.unlink()
    row = RawFile(
        sha256=upload.sha256, size_bytes=upload.size_bytes, stored_bytes=stored_bytes,
        is_compressed=is_compressed, is_duplicate=is_duplicate, content_type=content_type,
        task_id=metadata.task_id, platform=metadata.platform, state=metadata.state,
        county=metadata.county, parcel_key=metadata.parcel_key, parcel_id=metadata.parcel_id,
        scraped_at=metadata.scraped_at, worker_id=worker_id,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return StoredRawFile(
        id=row.id, sha256=row.sha256, size_bytes=row.size_bytes, stored_bytes=stored_bytes,
        is_compressed=is_compressed, is_duplicate=is_duplicate, content_type=content_type,
    )  # fmt: skip


def _put(storage: RawFileStorage, upload: ReceivedUpload, content_type: str) -> tuple[int, bool]:
    compressed = _gzip_if_it_pays(upload.path, upload.size_bytes, content_type)
    if compressed is None:
        return storage.put(upload.sha256, upload.path, is_compressed=False), False
    return storage.put(upload.sha256, compressed, is_compressed=True), True


def _gzip_if_it_pays(path: Path, size_bytes: int, content_type: str) -> Path | None:
    """A gzipped copy beside ``path`` if it saves enough, else None (and no copy left)."""
    if not _is_text(content_type) or size_bytes < _MIN_COMPRESS_BYTES:
        return None
    target = path.with_name(path.name + ".gz")
    with path.open("rb") as source, gzip.open(target, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, length=64 * 1024)
    if target.stat().st_size <= size_bytes * (1 - _MIN_SAVING):
        return target
    target.unlink()
    return None


def _stored_size(session: Session, sha256: str, size_bytes: int) -> tuple[int, bool]:
    earlier = session.execute(
        select(RawFile.stored_bytes, RawFile.is_compressed)
        .where(RawFile.sha256 == sha256, RawFile.is_duplicate.is_(False))
        .limit(1)
    ).first()
    return (earlier.stored_bytes, earlier.is_compressed) if earlier else (size_bytes, False)


def open_raw_file(
    session: Session, sha256: str, *, storage: RawFileStorage
) -> tuple[str, Iterator[bytes]]:
    """(content type, chunks of the original bytes) of a stored page; NotFound otherwise."""
    check_digest(sha256)
    content_type = session.execute(
        select(RawFile.content_type)
        .where(RawFile.sha256 == sha256)
        .order_by(RawFile.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    try:
        chunks = storage.read_chunks(sha256)
    except FileNotFoundError as exc:
        raise NotFound(f"raw file {sha256} is not stored") from exc
    return content_type or "application/octet-stream", chunks
