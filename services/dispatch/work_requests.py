"""What a lease request asks for, read the way the original gateway read it.

The original's clients send ``capacity`` as they always did: missing, ``0``, negative or not
a number meant the default of 10, and more than 100 meant 100. Refusing any of those would
stop a fleet that worked against the original, so none is an error here either.
"""

from __future__ import annotations

import re

DEFAULT_CAPACITY = 10
MAX_CAPACITY = 100
_INTEGER = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi reads


def parse_capacity(raw: str | None) -> int:
    """Tasks to lease: a positive integer capped at 100; anything else is the default 10."""
    text = (raw or "").strip()
    if not _INTEGER.fullmatch(text) or text.startswith("-"):
        return DEFAULT_CAPACITY
    digits = text.removeprefix("+").lstrip("0")
    if not digits:  # zero
        return DEFAULT_CAPACITY
    if len(digits) > len(str(MAX_CAPACITY)):  # never converts a number of a thousand digits
        return MAX_CAPACITY
    return min(int(digits), MAX_CAPACITY)
