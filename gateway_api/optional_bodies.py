"""Bodies the original gateway ignored, read so that its clients' requests still pass.

The original's ``complete`` and ``fail`` never read their body: its clients send none, an
empty one, or whatever their HTTP library makes of nothing. Here a body that is absent, empty,
not JSON or not a JSON object counts as no body; a JSON object is validated as usual (a field
of the wrong type is a 422 naming it).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


async def read_json_object(request: Request) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is anything else."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, nested too deeply
        return None
    return value if isinstance(value, dict) else None


def validate_optional_body(model: type[Model], raw: dict[str, Any] | None) -> Model | None:
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from exc


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its optional body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema}},
        }
    }
