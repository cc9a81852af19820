"""Raw page uploads: streamed, content-addressed, deduplicated, capped, type-checked, no paths."""

from __future__ import annotations

import hashlib
import json
import shutil
import tracemalloc
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import RawFile
from services.errors import PayloadTooLarge
from services.ingest.raw_upload import RawUploadReader

PAGE = b"<html><body>" + b"<tr><td>Owner</td><td>SMITH JOHN</td></tr>" * 400 + b"</body></html>"
BOUNDARY = "----taxlien-test-boundary"


@pytest.fixture(autouse=True)
def storage_root() -> Iterator[Path]:
    """The run's raw storage folder, emptied around each test."""
    from settings import get_settings

    root = get_settings().raw_storage_path
    shutil.rmtree(root, ignore_errors=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts]


def upload(
    client: TestClient,
    headers: dict[str, str],
    content: bytes = PAGE,
    *,
    metadata: Mapping[str, object] | None = None,
    content_type: str | None = "text/html",
    filename: str = "page",
) -> httpx.Response:
    files: dict[str, tuple[str, bytes] | tuple[str, bytes, str] | tuple[None, str]] = {
        "file": (filename, content, content_type) if content_type else (filename, content)
    }
    if metadata is not None:
        files["metadata"] = (None, json.dumps(metadata))
    response: httpx.Response = client.post("/internal/raw-files", files=files, headers=headers)
    return response


def test_an_upload_is_stored_by_digest_and_linked_to_task_and_parcel(
    api_client: TestClient,
    worker_headers: dict[str, str],
    admin_headers: dict[str, str],
    db_session: Session,
) -> None:
    task_id = str(uuid.uuid4())
    metadata = {
        "task_id": task_id, "platform": "qpublic", "state": "Florida", "county": "St. Johns",
        "parcel_id": "1-32-4N-4W-0000-00322-0300", "content_type": "text/html; charset=utf-8",
        "scraped_at": "2026-11-01T12:00:00Z",
    }  # fmt: skip

    response = upload(api_client, worker_headers, metadata=metadata)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"  # the original's answer, kept as a subset
    assert body["sha256"] == hashlib.sha256(PAGE).hexdigest()
    assert (body["size_bytes"], body["is_duplicate"]) == (len(PAGE), False)
    assert body["is_compressed"] and body["stored_bytes"] < len(PAGE) // 5  # gzip paid off
    row = db_session.execute(select(RawFile)).scalar_one()
    assert (str(row.task_id), row.state, row.county, row.parcel_key) == (
        task_id, "FL", "stjohns", "1324N4W0000003220300",
    )  # fmt: skip
    assert (row.content_type, row.worker_id) == ("text/html", "worker-test-1")

    fetched = api_client.get(f"/admin/raw-files/{body['sha256']}", headers=admin_headers)
    assert fetched.status_code == 200 and fetched.content == PAGE
    assert fetched.headers["content-type"].startswith("text/html")
    assert fetched.headers["content-disposition"].startswith("attachment")


def test_the_same_page_twice_is_stored_once(
    api_client: TestClient, worker_headers: dict[str, str], storage_root: Path, db_session: Session
) -> None:
    first = upload(api_client, worker_headers).json()
    second = upload(api_client, worker_headers, metadata={"parcel_id": "X-1"}).json()

    assert first["sha256"] == second["sha256"]
    assert (first["is_duplicate"], second["is_duplicate"]) == (False, True)
    assert second["path"] == first["path"]
    assert stored_files(storage_root) == [storage_root / first["path"]]
    assert second["stored_bytes"] == first["stored_bytes"]
    assert len([p for p in stored_files(storage_root) if first["sha256"] in p.name]) == 1
    assert len(db_session.execute(select(RawFile)).scalars().all()) == 2


def test_small_or_incompressible_files_are_stored_as_they_are(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    response = upload(api_client, worker_headers, b'{"a": 1}', content_type=None)
    body = response.json()

    assert body["content_type"] == "application/json"  # sniffed: old clients send no type
    assert (body["is_compressed"], body["stored_bytes"]) == (False, 8)
    sha = body["sha256"]
    assert body["path"] == f"{sha[:2]}/{sha[2:4]}/{sha}"


def test_metadata_is_optional_for_old_clients(
    api_client: TestClient, worker_headers: dict[str, str], db_session: Session
) -> None:
    response = upload(api_client, worker_headers)

    assert response.status_code == 200
    row = db_session.execute(select(RawFile)).scalar_one()
    assert (row.task_id, row.parcel_key) == (None, None)


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b"\x89PNG\r\n\x1a\n....", "image/png", "not accepted"),
        (b"<html>not a pdf</html>", "application/pdf", "not a PDF"),
        (b"<html>\x00\x01binary</html>", "text/html", "binary"),
        (b"\x00\x01\x02", None, "not accepted"),
    ],
)
def test_content_types_are_checked(
    api_client: TestClient,
    worker_headers: dict[str, str],
    storage_root: Path,
    content: bytes,
    content_type: str | None,
    fragment: str,
) -> None:
    response = upload(api_client, worker_headers, content, content_type=content_type)

    assert response.status_code == 415
    assert fragment in response.json()["error"]["message"]
    assert stored_files(storage_root) == []
    assert list((storage_root / ".incoming").iterdir()) == []


def test_invalid_metadata_is_refused_and_leaves_nothing_behind(
    api_client: TestClient, worker_headers: dict[str, str], storage_root: Path
) -> None:
    response = upload(api_client, worker_headers, metadata={"task_id": "not-a-uuid"})

    assert response.status_code == 422
    assert "task_id" in response.json()["error"]["message"]
    assert list((storage_root / ".incoming").iterdir()) == []


def test_client_names_never_become_paths(
    api_client: TestClient,
    worker_headers: dict[str, str],
    admin_headers: dict[str, str],
    storage_root: Path,
) -> None:
    hostile = {"parcel_id": "../../../../tmp/owned", "platform": "qpublic"}

    response = upload(
        api_client, worker_headers, filename="../../../../tmp/owned.html", metadata=hostile
    )

    assert response.status_code == 200
    sha = response.json()["sha256"]
    assert [p.relative_to(storage_root).parts[:2] for p in stored_files(storage_root)] == [
        (sha[:2], sha[2:4])
    ]
    assert "owned" not in response.json()["path"]
    assert not Path("/tmp/owned.html").exists() and not Path("/tmp/owned").exists()
    for bad in ("..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "A" * 64):
        assert api_client.get(f"/admin/raw-files/{bad}", headers=admin_headers).status_code in (
            404,
            422,
        )


def test_raw_files_need_tokens(api_client: TestClient, admin_headers: dict[str, str]) -> None:
    assert upload(api_client, {}).status_code == 401
    sha = "0" * 64
    assert api_client.get(f"/admin/raw-files/{sha}").status_code == 401
    assert api_client.get(f"/admin/raw-files/{sha}", headers=admin_headers).status_code == 404


def multipart_chunks(total_bytes: int, *, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.html"\r\n'
        "Content-Type: text/html\r\n\r\n"
    ).encode()
    sent = 0
    while sent < total_bytes:
        piece = min(chunk, total_bytes - sent)
        yield b"<" + b"x" * (piece - 1)
        sent += piece
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_an_upload_over_the_cap_is_refused_with_the_limit_while_streaming(
    api_client: TestClient, worker_headers: dict[str, str], storage_root: Path
) -> None:
    from settings import get_settings

    limit = get_settings().raw_file_max_bytes
    headers = {**worker_headers, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}

    response = api_client.post(
        "/internal/raw-files", content=multipart_chunks(limit + 1), headers=headers
    )

    assert response.status_code == 413
    assert str(limit) in response.json()["error"]["message"]
    assert stored_files(storage_root) == []
    assert list((storage_root / ".incoming").iterdir()) == []


def test_the_reader_spools_to_disk_without_holding_the_file_in_memory(tmp_path: Path) -> None:
    total = 16 * 1024 * 1024
    reader = RawUploadReader(
        f"multipart/form-data; boundary={BOUNDARY}", spool_dir=tmp_path, max_file_bytes=total
    )
    digest = hashlib.sha256()

    tracemalloc.start()
    for piece in multipart_chunks(total, chunk=256 * 1024):
        reader.feed(piece)
        if not piece.startswith((b"--", b"\r\n")):
            digest.update(piece)
    received = reader.finish()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert received.size_bytes == total and received.sha256 == digest.hexdigest()
    assert received.path.stat().st_size == total
    assert peak < 2 * 1024 * 1024  # a few chunks at most, never the 16 MiB file


def test_the_reader_stops_at_the_limit(tmp_path: Path) -> None:
    reader = RawUploadReader(
        f"multipart/form-data; boundary={BOUNDARY}", spool_dir=tmp_path, max_file_bytes=1000
    )

    with pytest.raises(PayloadTooLarge, match="1000 bytes"):
        for piece in multipart_chunks(5000, chunk=100):
            reader.feed(piece)
    reader.discard()

    assert list(tmp_path.iterdir()) == []


def _raw_post(client: TestClient, headers: dict[str, str], body: bytes) -> httpx.Response:
    response: httpx.Response = client.post(
        "/internal/raw-files",
        content=body,
        headers={**headers, "content-type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    return response


def test_an_upload_cut_short_before_its_closing_boundary_is_refused(
    api_client: TestClient, worker_headers: dict[str, str], storage_root: Path
) -> None:
    whole = b"".join(multipart_chunks(len(PAGE)))
    cut = whole[: -len(f"\r\n--{BOUNDARY}--\r\n") - 10]

    response = _raw_post(api_client, worker_headers, cut)

    assert response.status_code == 422 and "incomplete" in response.json()["error"]["message"]
    assert stored_files(storage_root) == []
    assert list((storage_root / ".incoming").iterdir()) == []


def test_a_malformed_multipart_body_is_refused_with_422(
    api_client: TestClient, worker_headers: dict[str, str], storage_root: Path
) -> None:
    response = _raw_post(api_client, worker_headers, b"this is not multipart at all\r\n")

    assert response.status_code == 422 and "malformed" in response.json()["error"]["message"]
    assert stored_files(storage_root) == []


def test_the_reader_hands_over_a_closed_file_with_every_byte(tmp_path: Path) -> None:
    reader = RawUploadReader(
        f"multipart/form-data; boundary={BOUNDARY}", spool_dir=tmp_path, max_file_bytes=10_000
    )
    for piece in multipart_chunks(3000, chunk=1000):
        reader.feed(piece)

    received = reader.finish()

    assert received.path.read_bytes()[:1] == b"<" and received.path.stat().st_size == 3000
