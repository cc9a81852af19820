"""Types every external value goes through: text PostgreSQL can store, numbers its columns and
intervals can hold. A value outside them is a 422 naming the field, never a 5xx later.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from services.text_checks import text_problem


def _check_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Any string from outside: query parameters, headers, path parameters and JSON bodies.
# Length limits stay with each field (``Annotated[Text, Field(max_length=...)]``).
Text = Annotated[str, AfterValidator(_check_text)]

INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
# An age or interval in seconds: ten years is beyond any dead letter, and "now - age" stays
# inside Python's datetime and PostgreSQL's timestamp range.
MAX_AGE_S = 10 * 365 * 24 * 3600

PlatformName = Annotated[Text, Field(max_length=64)]

Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]  # an INTEGER column, never negative
BigId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]  # a BIGINT identity
AgeSeconds = Annotated[float, Field(ge=0, le=MAX_AGE_S, allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]  # per core, summed
