"""Error answers of the portal: every refusal is a :class:`~aitestbed.portal.schemas.Problem`.

FastAPI's own answer to a request its schema refuses echoes the input back, which fails
(a 500) when the input is NaN or an infinity, and has a shape of its own. Here a refused
request is a 422 that names the field in words and never repeats the input; a hub that
cannot be reached is a 503 that says so, not a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from aitestbed.portal.auth import HubUnavailable

RETRY_AFTER_SECONDS = "30"
# Where a parameter came from is in the first element of FastAPI's location; the field is
# what follows (body.nodes -> nodes, query.offset -> offset).
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def join_field(parts: Sequence[Any]) -> str:
    """``("parameters", "grid", 0)`` -> ``parameters.grid[0]``."""
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "(body)"


def field_name(location: Sequence[Any]) -> str:
    """FastAPI's error location as the request's field: ``("body", "parameters", "lr")``
    -> ``parameters.lr``."""
    parts = list(location)
    if parts and parts[0] in _SOURCES and len(parts) > 1:
        parts = parts[1:]
    return join_field(parts)


def _message(error: dict[str, Any]) -> str:
    text = str(error.get("msg", "is invalid"))
    # A validator's ValueError reads "Value error, <ours>"; keep ours.
    return text.removeprefix("Value error, ").rstrip(".")


class FieldsProblem(Exception):
    """A refusal the portal's own checks found, naming fields: answered with ``status`` in
    the one error shape. ``problems`` are (field, message) pairs."""

    def __init__(self, status: int, problems: Iterable[tuple[str, str]]) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.problems))


def invalid_fields(problems: Iterable[tuple[str, str]]) -> FieldsProblem:
    """A 422 for fields the schema let through but the portal's rules refuse."""
    return FieldsProblem(422, problems)


def validation_problem(errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The body naming fields (pydantic's errors, or ours in its form): the first field
    leads, every problem is listed."""
    problems = [{"field": field_name(e.get("loc", ())), "message": _message(e)} for e in errors]
    if not problems:
        problems = [{"field": "(body)", "message": "The request is not valid."}]
    first = problems[0]
    return {
        "detail": f"{first['field']}: {first['message']}.",
        "field": first["field"],
        "errors": problems,
    }


async def request_validation_handler(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse(validation_problem(error.errors()), status_code=422)


async def fields_problem_handler(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, FieldsProblem)
    errors = [{"loc": (field,), "msg": message} for field, message in error.problems]
    return JSONResponse(validation_problem(errors), status_code=error.status)


async def hub_unavailable_handler(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": str(error)}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )


def install(app: FastAPI) -> None:
    """Answer schema errors and an unreachable hub in the portal's one error shape."""
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(FieldsProblem, fields_problem_handler)
    app.add_exception_handler(HubUnavailable, hub_unavailable_handler)
