"""Receiving a multipart raw-file upload as a stream: hashed and spooled to disk as it arrives.

The body is fed chunk by chunk; the ``file`` part goes straight to a temporary file while its
sha256 and size are computed, so the whole file is never held in memory and an oversized
upload is refused as soon as it passes the limit. The ``metadata`` part (JSON) is small and
kept in memory up to its own cap. Other parts are ignored. Nothing from the client (file
names included) is used as a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.errors import InvalidInput, PayloadTooLarge

MAX_METADATA_BYTES = 16 * 1024
HEAD_BYTES = 8 * 1024  # kept for content sniffing


@dataclass
class ReceivedUpload:
    path: Path  # the spooled file part; the caller moves or deletes it
    sha256: str
    size_bytes: int
    head: bytes  # first bytes, for content sniffing
    part_content_type: str | None
    metadata: bytes | None


@dataclass
class _Part:
    name: str | None = None
    content_type: str | None = None
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class RawUploadReader:
    """Feed it the body (``feed``), then ``finish``; ``discard`` on any error."""

    def __init__(self, content_type: str, *, spool_dir: Path, max_file_bytes: int) -> None:
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidInput("body must be multipart/form-data with a boundary")
        self._spool_dir = spool_dir
        self._max_file_bytes = max_file_bytes
        self._part = _Part()
        self._field_name = self._header_value = b""
        self._file: BinaryIO | None = None
        self._file_path: Path | None = None
        self._file_content_type: str | None = None
        self._has_file = False
        self._file_completed = False  # its closing boundary arrived
        self._hash = hashlib.sha256()
        self._size = 0
        self._head = bytearray()
        self._metadata: bytearray | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise InvalidInput(f"malformed multipart body ({exc})") from exc

    def finish(self) -> ReceivedUpload:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInput(f"malformed multipart body ({exc})") from exc
        finally:
            self._close_spool()
        if not self._has_file or self._file_path is None:
            raise InvalidInput("multipart part 'file' is required")
        if not self._file_completed:
            # A body cut short: what arrived is not the file, so it must not be stored
            # under the digest of the bytes that happened to arrive.
            raise InvalidInput("multipart part 'file' is incomplete (no closing boundary)")
        return ReceivedUpload(
            path=self._file_path,
            sha256=self._hash.hexdigest(),
            size_bytes=self._size,
            head=bytes(self._head),
            part_content_type=self._file_content_type,
            metadata=bytes(self._metadata) if self._metadata is not None else None,
        )

    def discard(self) -> None:
        self._close_spool()
        if self._file_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._file_path.unlink()

    # --- parser callbacks ------------------------------------------------------------------
    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers.append((self._field_name.lower(), self._header_value))
        self._field_name = self._header_value = b""

    def _on_headers_finished(self) -> None:
        for name, value in self._part.headers:
            if name == b"content-disposition":
                _, options = parse_options_header(value)
                self._part.name = options.get(b"name", b"").decode("latin-1")
            elif name == b"content-type":
                self._part.content_type = value.decode("latin-1").strip()
        if self._part.name == "file":
            if self._has_file:
                raise InvalidInput("multipart part 'file' appears more than once")
            self._open_spool()
        elif self._part.name == "metadata":
            self._metadata = bytearray()

    def _open_spool(self) -> None:
        fd, name = tempfile.mkstemp(dir=self._spool_dir, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._file_path = Path(name)
        self._file_content_type = self._part.content_type
        self._has_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._part.name == "file" and self._file is not None:
            self._size += len(piece)
            if self._size > self._max_file_bytes:
                raise PayloadTooLarge(f"file exceeds the limit of {self._max_file_bytes} bytes")
            self._hash.update(piece)
            self._file.write(piece)
            if len(self._head) < HEAD_BYTES:
                self._head += piece[: HEAD_BYTES - len(self._head)]
        elif self._part.name == "metadata" and self._metadata is not None:
            self._metadata += piece
            if len(self._metadata) > MAX_METADATA_BYTES:
                raise PayloadTooLarge(f"metadata exceeds the limit of {MAX_METADATA_BYTES} bytes")

    def _on_part_end(self) -> None:
        if self._part.name == "file" and self._file is not None:
            self._close_spool()
            self._file_completed = True

    def _close_spool(self) -> None:
        """Flushes and closes the spool file (idempotent)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
