"""Raw scraped pages: workers upload them (streamed, content-addressed), operators read them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from gateway_api.auth import AdminDep, WorkerDep
from gateway_api.deps import SessionDep
from gateway_api.edge import RAW_UPLOAD_OVERHEAD_BYTES
from services.errors import PayloadTooLarge
from services.ingest.raw_files import open_raw_file, store_raw_file
from services.ingest.raw_storage import LocalFolderStorage, RawFileStorage
from services.ingest.raw_upload import RawUploadReader
from settings import get_settings

router = APIRouter(tags=["raw files"])
Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="sha256 hex digest")]


@lru_cache(maxsize=1)
def raw_file_storage() -> RawFileStorage:
    return LocalFolderStorage(get_settings().raw_storage_path)


class RawFileOut(BaseModel):
    id: int
    sha256: str
    size_bytes: int
    stored_bytes: int
    is_compressed: bool
    is_duplicate: bool
    content_type: str


@router.post("/internal/raw-files", status_code=201)
async def post_raw_file(request: Request, worker: WorkerDep, session: SessionDep) -> RawFileOut:
    """Upload a raw page: multipart ``file`` and optional ``metadata`` JSON; stored by sha256."""
    settings = get_settings()
    limit = settings.raw_file_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + RAW_UPLOAD_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"file exceeds the limit of {limit} bytes")
    storage = raw_file_storage()
    reader = RawUploadReader(
        request.headers.get("content-type", ""),
        spool_dir=storage.incoming_dir(),
        max_file_bytes=limit,
    )
    try:
        # Each chunk is hashed and appended to the spool file as it arrives (small writes).
        async for chunk in request.stream():
            reader.feed(chunk)
        upload = reader.finish()
    except BaseException:
        reader.discard()
        raise
    stored = await run_in_threadpool(
        store_raw_file,
        session,
        upload,
        storage=storage,
        allowed_types=settings.raw_file_content_types,
        worker_id=worker.worker_id,
    )
    return RawFileOut(**stored.__dict__)


@router.get(
    "/admin/raw-files/{sha256}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_raw_file(sha256: Sha256, _: AdminDep, session: SessionDep) -> StreamingResponse:
    """Download a stored raw page by its sha256 (as an attachment, never rendered)."""
    content_type, chunks = open_raw_file(session, sha256, storage=raw_file_storage())
    return StreamingResponse(
        _iterate(chunks),
        media_type=content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{sha256}"',
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{sha256}"',
        },
    )


def _iterate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield from chunks
