"""Where raw page bytes live: content-addressed by sha256, behind a small interface.

``LocalFolderStorage`` is the default; an object store (S3, GCS) implements the same four
methods. Paths are built only from the server-computed hex digest, never from client input.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from services.errors import InvalidInput

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
READ_CHUNK_BYTES = 64 * 1024


def check_digest(sha256: str) -> str:
    """The digest itself if it is 64 lowercase hex characters; nothing else reaches a path."""
    if not _SHA256_HEX.match(sha256):
        raise InvalidInput(f"{sha256[:80]!r} is not a sha256 hex digest")
    return sha256


class RawFileStorage(Protocol):
    def has(self, sha256: str) -> bool:
        """Whether content with this digest is stored (compressed or not)."""
        ...

    def put(self, sha256: str, source: Path, *, is_compressed: bool) -> int:
        """Store the file at ``source`` (moved or copied) under the digest; returns bytes stored."""
        ...

    def read_chunks(self, sha256: str) -> Iterator[bytes]:
        """The original (decompressed) bytes, in chunks; ``FileNotFoundError`` if absent."""
        ...

    def incoming_dir(self) -> Path:
        """A local folder for uploads being received (same filesystem as the store, if local)."""
        ...


class LocalFolderStorage:
    """``<root>/ab/cd/<sha256>`` or ``<sha256>.gz``; writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str, *, is_compressed: bool) -> Path:
        digest = check_digest(sha256)
        name = f"{digest}.gz" if is_compressed else digest
        return self.root / digest[:2] / digest[2:4] / name

    def _existing(self, sha256: str) -> Path | None:
        for is_compressed in (True, False):
            path = self._path(sha256, is_compressed=is_compressed)
            if path.exists():
                return path
        return None

    def has(self, sha256: str) -> bool:
        return self._existing(sha256) is not None

    def put(self, sha256: str, source: Path, *, is_compressed: bool) -> int:
        target = self._path(sha256, is_compressed=is_compressed)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same content under the same name: a concurrent upload of the same page is harmless.
        fd, staging_name = tempfile.mkstemp(dir=target.parent, prefix=".put-")
        os.close(fd)
        shutil.move(str(source), staging_name)
        os.replace(staging_name, target)
        return target.stat().st_size

    def read_chunks(self, sha256: str) -> Iterator[bytes]:
        path = self._existing(sha256)
        if path is None:
            raise FileNotFoundError(sha256)  # now, not at the first chunk
        return _chunks(path)

    def incoming_dir(self) -> Path:
        path = self.root / ".incoming"
        path.mkdir(parents=True, exist_ok=True)
        return path


def _chunks(path: Path) -> Iterator[bytes]:
    with contextlib.ExitStack() as stack:
        raw: BinaryIO = stack.enter_context(path.open("rb"))
        if path.suffix == ".gz":
            raw = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[assignment]
        while chunk := raw.read(READ_CHUNK_BYTES):
            yield chunk
