"""Raw scraped pages: workers upload them (streamed, content-addressed), operators read them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gateway_api.api_docs import ADMIN_ERRORS, WORKER_ERRORS, error_responses
from gateway_api.auth import AdminDep, WorkerDep
from gateway_api.deps import SessionDep
from gateway_api.edge import RAW_UPLOAD_OVERHEAD_BYTES
from services.errors import PayloadTooLarge
from services.ingest.raw_files import open_raw_file, store_raw_file
from services.ingest.raw_storage import LocalFolderStorage, RawFileStorage
from services.ingest.raw_upload import RawUploadReader
from settings import get_settings

router = APIRouter()
Sha256 = Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="sha256 hex digest")]


@lru_cache(maxsize=1)
def raw_file_storage() -> RawFileStorage:
    return LocalFolderStorage(get_settings().raw_storage_path)


class RawFileOut(BaseModel):
    """The original gateway's ``{"status": "ok", "path"}`` plus what was stored."""

    status: Literal["ok"] = "ok"
    path: str = Field(description="Where the bytes are stored, relative to the raw storage")
    id: int
    sha256: str
    size_bytes: int
    stored_bytes: int
    is_compressed: bool
    is_duplicate: bool
    content_type: str


def stored_path(sha256: str, *, is_compressed: bool) -> str:
    """``ab/cd/<sha256>[.gz]``: the content-addressed layout of ``LocalFolderStorage``."""
    name = f"{sha256}.gz" if is_compressed else sha256
    return f"{sha256[:2]}/{sha256[2:4]}/{name}"


@router.post(
    "/internal/raw-files",
    tags=["workers"],
    summary="Upload a raw page",
    responses={**WORKER_ERRORS, **error_responses(413)},
)
async def post_raw_file(request: Request, worker: WorkerDep, session: SessionDep) -> RawFileOut:
    """Upload a raw page: multipart ``file`` and optional ``metadata`` JSON; stored by sha256.

    200 as the original answered; the same page uploaded again is stored once (``path`` is
    the same, ``is_duplicate`` true).
    """
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
    path = stored_path(stored.sha256, is_compressed=stored.is_compressed)
    return RawFileOut(path=path, **stored.__dict__)


@router.get(
    "/admin/raw-files/{sha256}",
    response_class=StreamingResponse,
    tags=["admin"],
    summary="Download a raw page",
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **ADMIN_ERRORS,
        **error_responses(404, 422),
    },
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
