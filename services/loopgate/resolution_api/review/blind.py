"""Blindness: while an exception's resolution waits for its second review, its first decision is
sealed from everyone but the person who made it. `see_as` (called where authentication says who
calls, beside scoping's `act_as`) names the viewer; the exception's resolution is left out of its
API and console answers (`sealed`), and its `resolve` history events are not loaded at all (an ORM
hook, like scoping.py's, so a new query cannot forget it). Work outside a request (no viewer) sees all."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow

PENDING = "pending"
T = TypeVar("T")

_viewer: ContextVar[str | None] = ContextVar("loopgate_review_viewer", default=None)


def see_as(name: str) -> None:
    """From here on in this request, sealed decisions are hidden unless `name` made them."""
    _viewer.set(name)


def viewer() -> str | None:
    return _viewer.get()


def is_sealed(row: ExceptionRow) -> bool:
    """Whether the caller may not see `row`'s decision yet."""
    who = _viewer.get()
    return who is not None and row.second_review == PENDING and row.resolver != who


def sealed(row: ExceptionRow, resolution: T) -> T | None:
    """`resolution` of `row`, or None while it is sealed from the caller."""
    return None if is_sealed(row) else resolution


def not_sealed() -> sa.ColumnElement[bool]:
    """The exceptions whose decision the caller may see, as a WHERE clause (the training export)."""
    who = _viewer.get()
    if who is None:
        return sa.true()
    return ExceptionRow.id.not_in(_sealed_ids(who))


def _sealed_ids(who: str) -> sa.Select[Any]:
    return sa.select(ExceptionRow.id).where(
        ExceptionRow.second_review == PENDING, sa.or_(ExceptionRow.resolver.is_(None), ExceptionRow.resolver != who)
    )


@event.listens_for(Session, "do_orm_execute")
def _seal_history(state: ORMExecuteState) -> None:
    who = _viewer.get()
    if who is None or not state.is_select or state.is_column_load or state.is_relationship_load:
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            ExceptionEventRow,
            sa.not_(
                sa.and_(ExceptionEventRow.action == "resolve", ExceptionEventRow.exception_id.in_(_sealed_ids(who)))
            ),
            include_aliases=True,
        )
    )
