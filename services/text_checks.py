"""What every external string must satisfy before it goes near PostgreSQL.

PostgreSQL text cannot hold NUL, and UTF-8 cannot encode a lone surrogate (JSON's
``"\\ud800"`` decodes to one): either would fail a statement with a 5xx, or fail a whole
batch, after the input was accepted. The API's schemas and the ingest validation both ask
``text_problem``, so an input is refused at the edge, once, with the field named.
"""

from __future__ import annotations


def text_problem(value: str, *, max_chars: int | None = None) -> str | None:
    """Why ``value`` cannot be stored as text, or ``None`` when it can."""
    if max_chars is not None and len(value) > max_chars:
        return f"longer than {max_chars} characters"
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode text)"
    return None
