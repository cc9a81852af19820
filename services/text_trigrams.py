"""The trigrams of a text, as the owner and address substring search indexes them.

A substring's trigrams all occur in any text that contains it, so "the column's trigrams
contain the needle's" (a GIN index on ``text[]``) finds the candidates, and a substring test
on the rows found decides. The ingest computes each parcel's trigrams here and stores them
(``parcels.owner_trigrams``, ``address_trigrams``); the search computes the needle's with the
same function, so the two always agree. Normalisation: lower case, runs of whitespace as one
space, trimmed, as ``public_text_normalize`` does in SQL for the substring test.
"""

from __future__ import annotations

import re

_SQL_WHITESPACE = re.compile(r"[ \t\n\r\f\v]+")


def normalize_for_search(value: str) -> str:
    return _SQL_WHITESPACE.sub(" ", value.lower()).strip(" \t\n\r\f\v")


def text_trigrams(value: str | None) -> list[str] | None:
    """Each distinct three-character run of the normalised text, in order; ``None`` for
    ``None`` (no text, nothing indexed)."""
    if value is None:
        return None
    text = normalize_for_search(value)
    return list(dict.fromkeys(text[n : n + 3] for n in range(len(text) - 2)))


def covering_trigrams(needle: str) -> list[str]:
    """Trigrams that cover the needle without overlap, and its last one: enough for the index
    to narrow the candidates (the substring test decides), with fewer posting lists to read."""
    text = normalize_for_search(needle)
    trigrams = [text[n : n + 3] for n in range(0, len(text) - 2, 3)]
    if len(text) >= 3:
        trigrams.append(text[-3:])
    return list(dict.fromkeys(trigrams))
