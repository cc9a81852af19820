"""Half-written raw uploads left behind by a crash: removed when the API starts.

Uploads spool into the storage's incoming folder and are moved away (or deleted) when they
end; a process killed mid-upload leaves its spool file behind for good. Only files untouched
for a while are removed, so uploads that another live API process is writing are kept.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)
STALE_SPOOL_S = 3600.0  # a live upload writes its spool file continuously


def remove_stale_spool_files(
    directory: Path, *, older_than_s: float = STALE_SPOOL_S, now: float | None = None
) -> int:
    """Delete regular files in ``directory`` not modified for ``older_than_s``; the count."""
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for path in directory.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # finished (moved away) meanwhile
    if removed:
        logger.info("removed %d half-written upload(s) from %s", removed, directory)
    return removed
