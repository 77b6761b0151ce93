"""The one rule for JSON request bodies and query strings under /api (bookings, people, and whoever uses it):

- 413: the body is larger than the limit (64 KiB for a JSON body);
- 400: the body cannot be read as JSON at all (a syntax error, or bytes that are not UTF-8);
- 422: well-formed input the model refuses: a missing or unknown field, a wrong type, a value out of bounds, a
  naive time; the message names every field and says why (`field: reason; other: reason`). Query parameters
  that the model refuses are 422 as well.

An empty body counts as `{}` (so a model whose fields all have defaults needs none, and a model with required
fields answers 422 naming them). Refusals by the services after validation keep their own statuses (403, 404,
409, and the 400/422 each service gives).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

MAX_JSON_BYTES = 64 * 1024
M = TypeVar("M", bound=BaseModel)


class BodyError(Exception):
    """Input refused by the rule above; `status` is what the API answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def explain(exc: ValidationError) -> str:
    """A pydantic error as one line naming each field and what is wrong with it."""
    parts = []
    for item in exc.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


async def parse_json(request: web.Request, model: type[M], limit: int = MAX_JSON_BYTES) -> M:
    if request.content_length is not None and request.content_length > limit:
        raise BodyError("the body is too large", 413)
    raw = await request.read()
    if len(raw) > limit:
        raise BodyError("the body is too large", 413)
    try:
        return model.model_validate_json(raw if raw.strip() else b"{}")
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise BodyError("the request body is not valid JSON", 400) from exc
        raise BodyError(explain(exc), 422) from exc


def parse_query(model: type[M], values: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise BodyError(explain(exc), 422) from exc
