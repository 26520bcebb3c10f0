"""Every error the API answers with: a status code and one message naming the problem.
The one place HTTP meets the service layer's domain errors (domain_errors.py): STATUS_CODES maps
each to its status; handlers turn them (and request validation errors) into JSON; nothing a
client sends is a 500. Only authentication (401, 403) is raised as HTTP, by auth.py.

The database's own error text never reaches a client (it names tables, columns, constraints and
other rows' values): the answer says what kind of problem it is, the API's log has the text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopgate.resolution_api.domain_errors import (
    Conflict,
    DomainError,
    InvalidRequest,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    Unavailable,
)
from loopgate.resolution_api.schemas import ErrorBody

log = logging.getLogger(__name__)

STATUS_CODES: dict[type[DomainError], int] = {
    InvalidRequest: 400,
    NotAllowed: 403,
    NotFound: 404,
    Conflict: 409,  # TransitionNotAllowed too
    PreconditionFailed: 412,
    Unavailable: 503,
}


def status_of(err: DomainError) -> int:
    """The HTTP status of a domain error (of its nearest mapped class)."""
    for kind in type(err).__mro__:
        if kind in STATUS_CODES:
            return STATUS_CODES[kind]
    return 500


class ApiError(Exception):
    """An HTTP error raised at the HTTP layer itself (authentication); never below the routes."""

    status_code = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, detail: str, *, invalid: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(ApiError):
    status_code = 403


_DESCRIPTIONS = {
    400: "Bad request: an unreadable body (not UTF-8 JSON) or an invalid cursor",
    413: "The request body is over LOOPGATE_API_MAX_BODY_BYTES (refused before it is read)",
    401: "Missing, invalid or revoked bearer token",
    403: "The token's role may not do this",
    404: "No such exception or token",
    409: "The transition is not allowed from the exception's current state, or it changed meanwhile",
    412: "If-Match does not match the exception's current version (ETag)",
    503: "Not ready, or too busy: retry later",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route can give."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def invalid(loc: tuple[str, ...], message: str, kind: str) -> RequestValidationError:
    """A 422 naming the field, for checks a route makes with the running settings."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": kind}])


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """One line naming each invalid field and its problem."""
    parts = []
    for error in errors[:5]:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            parts.append(f"body is not valid JSON: {reason}".rstrip(": "))
        else:
            parts.append(f"{_location(error.get('loc', ()))}: {error.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    retry_after = exc.retry_after if isinstance(exc, Unavailable) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": exc.message}, status_code=status_of(exc), headers=headers)


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The body of a 422: each invalid field (loc, msg, type) and one line naming them."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]
    return {"detail": detail, "message": describe_validation_errors(list(errors))}


UNSTORABLE_MESSAGE = "a value in the request cannot be stored or compared by the database"
UNAVAILABLE_MESSAGE = "database unavailable, retry later"


def database_text(exc: Exception) -> str:
    """The database's own message of `exc`, for the log only: one line, at most 500 characters."""
    return repr(str(getattr(exc, "orig", exc)))[:500]  # repr: no CR/LF from data in a log line


def unstorable_body(exc: Exception) -> dict[str, Any]:
    """The body of the 422 for a value the database refused (its text goes to the log)."""
    log.warning("the database refused a value (%s): %s", type(exc).__name__, database_text(exc))
    return {
        "detail": [{"loc": ["request"], "msg": UNSTORABLE_MESSAGE, "type": "unstorable_value"}],
        "message": UNSTORABLE_MESSAGE,
    }


def record_error(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The status and body a single create would answer for this error of one record (a batch
    answers each record's own); None for an error that is not the record's (the whole request's)."""
    if isinstance(exc, DomainError) and not isinstance(exc, Unavailable):
        return status_of(exc), {"detail": exc.message}
    if isinstance(exc, DataError):
        return 422, unstorable_body(exc)
    return None


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(validation_body(exc.errors()), status_code=422)


async def _unstorable_value(_request: Request, exc: Exception) -> JSONResponse:
    # Safety net for values the database refuses (e.g. a NUL character in a path or query value):
    # the request is at fault, so a 422 naming the problem, never a 500.
    return JSONResponse(unstorable_body(exc), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the body could not be read as JSON: it must be UTF-8 encoded JSON"
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable (%s): %s", type(exc).__name__, database_text(exc))
    return JSONResponse({"detail": UNAVAILABLE_MESSAGE}, status_code=503, headers={"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(InterfaceError, _database_unavailable)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
