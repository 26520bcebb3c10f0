"""The one place that applies the caller's scope: every ORM statement over exceptions (a list, a
get, a count, a statistic, an export, a lock, a bulk UPDATE or DELETE), their history and the
silences (a client's own only) runs
with the caller's WHERE added, by SQLAlchemy's `do_orm_execute` hook and `with_loader_criteria`,
so a new endpoint or query cannot forget it. An exception outside the scope is, to the caller,
one that does not exist: the same 404.

Whose scope: `caller_scope`, a context variable. `ScopeMiddleware` sets it to NOTHING for every
request under /v1 and /console, and authentication (auth.py, the console's session) sets the
principal's own; so a route that somehow skipped authentication sees nothing. Work outside a
request (the intake, relays, sweeper, retention, the CLI) runs agency-wide, the default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from loopgate.resolution_api.access.permissions import AGENCY_WIDE, NOTHING, Scope
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow, SecondReviewRow, SilenceRow

caller_scope: ContextVar[Scope] = ContextVar("loopgate_caller_scope", default=AGENCY_WIDE)
SCOPED_PATHS = ("/v1/", "/console")


def visible(scope: Scope) -> sa.ColumnElement[bool]:
    """The exceptions `scope` may see, as a WHERE clause on the exceptions table."""
    conditions: list[sa.ColumnElement[bool]] = []
    if scope.clients is not None:
        conditions.append(ExceptionRow.client_id.in_(sorted(scope.clients)))
    if scope.queues is not None:
        conditions.append(ExceptionRow.queue.in_(sorted(scope.queues)))
    return sa.and_(sa.true(), *conditions)


def act_as(scope: Scope) -> None:
    """From here on in this request (its context), statements see only what `scope` covers."""
    caller_scope.set(scope)


@contextmanager
def acting_as(scope: Scope) -> Iterator[None]:
    """Within the block, statements see only what `scope` covers (tests, tools)."""
    token = caller_scope.set(scope)
    try:
        yield
    finally:
        caller_scope.reset(token)


@event.listens_for(Session, "do_orm_execute")
def _apply_scope(state: ORMExecuteState) -> None:
    scope = caller_scope.get()
    if scope.agency_wide or not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the row was loaded through a statement that was scoped already
    allowed = visible(scope)
    options = [
        with_loader_criteria(ExceptionRow, allowed, include_aliases=True),
        with_loader_criteria(
            ExceptionEventRow,
            ExceptionEventRow.exception_id.in_(sa.select(ExceptionRow.id).where(allowed)),
            include_aliases=True,
        ),
        with_loader_criteria(  # second reviews and their agreement: those of visible exceptions (review/)
            SecondReviewRow,
            SecondReviewRow.exception_id.in_(sa.select(ExceptionRow.id).where(allowed)),
            include_aliases=True,
        ),
    ]
    if scope.clients is not None:  # a client's silences only (an agency-wide one is not theirs to see)
        options.append(with_loader_criteria(SilenceRow, SilenceRow.client_id.in_(sorted(scope.clients))))
    state.statement = state.statement.options(*options)


class ScopeMiddleware:
    """Every request under /v1 and /console starts seeing nothing, until authentication says whom
    it serves; the value is put back when the request ends (a server or test client that runs
    requests in one task keeps no scope from one to the next)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(SCOPED_PATHS):
            await self.app(scope, receive, send)
            return
        token = caller_scope.set(NOTHING)
        try:
            await self.app(scope, receive, send)
        finally:
            caller_scope.reset(token)
