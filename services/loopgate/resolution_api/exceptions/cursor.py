"""Opaque pagination cursors: the sort keys of the last item of a page.

Each list order (`Sort`) pages on its own keys, ending in (created_at, id) so that ties are
broken the same way everywhere: `newest` on (created_at, id) newest first (new exceptions sort
before every cursor, so paging stays stable while they arrive); `impact` on the impact amount,
largest first, exceptions without one last; `severity` on the severity rank, then as `impact`.
A cursor names its order, and is refused with another one (its keys would mean nothing there)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from loopgate_schemas.exceptions import Severity


class Sort(StrEnum):
    """The orders of the exception list."""

    NEWEST = "newest"  # created_at desc, id desc
    SEVERITY = "severity"  # severity desc, impact amount desc (none last), then newest
    IMPACT = "impact"  # impact amount desc (none last), then newest


RANKS = frozenset(severity.rank for severity in Severity)


class BadCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the keys of its last exception in the page's order."""

    sort: Sort
    created_at: dt.datetime
    exception_id: str
    severity_rank: int = 0  # sort=severity only
    impact_amount: float | None = None  # sort=severity and impact; None: it had no impact (sorted last)


def encode_cursor(position: Position) -> str:
    keys: list[Any] = [position.created_at.astimezone(dt.UTC).isoformat(), position.exception_id]
    if position.sort is Sort.IMPACT:
        keys = [Sort.IMPACT.value, *keys, position.impact_amount]
    elif position.sort is Sort.SEVERITY:
        keys = [Sort.SEVERITY.value, *keys, position.severity_rank, position.impact_amount]
    # sort=newest keeps the two-item form cursors had before there were other orders.
    return base64.urlsafe_b64encode(orjson.dumps(keys)).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> Position:
    """The position a cursor names, for a page in `sort` order; BadCursor when it is not one we
    made, or was made for another order."""
    invalid = BadCursor(f"invalid cursor {cursor[:80]!r}: pass next_cursor from a previous page")
    try:
        keys = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise invalid from None
    if not isinstance(keys, list):
        raise invalid
    made_for = Sort.NEWEST
    if keys and isinstance(keys[0], str) and keys[0] in (Sort.SEVERITY.value, Sort.IMPACT.value):
        made_for = Sort(keys.pop(0))
    arity = {Sort.NEWEST: 2, Sort.IMPACT: 3, Sort.SEVERITY: 4}[made_for]
    if len(keys) != arity:
        raise invalid
    when, exception_id = _time(keys[0]), keys[1]
    if when is None or not isinstance(exception_id, str) or not _plausible(when, exception_id):
        raise invalid
    rank, amount = 0, None
    if made_for is Sort.SEVERITY:
        rank = keys[2]
        if type(rank) is not int or rank not in RANKS:
            raise invalid
    if made_for is not Sort.NEWEST:
        amount = keys[-1]
        if amount is not None and (type(amount) not in (int, float) or not math.isfinite(amount) or amount < 0):
            raise invalid
    if made_for is not sort:
        raise BadCursor(
            f"cursor is from a list with sort={made_for.value}, not sort={sort.value}: pass the same sort as "
            "the page it came from, or start again without a cursor"
        )
    return Position(
        sort=sort,
        created_at=when.astimezone(dt.UTC),
        exception_id=exception_id,
        severity_rank=rank,
        impact_amount=None if amount is None else float(amount),
    )


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _plausible(when: dt.datetime, exception_id: str) -> bool:
    """Could we have made it: a time that converts to UTC, an id that fits the column and can be
    compared by every database (no NUL, no lone surrogate)."""
    try:
        when.astimezone(dt.UTC)
        exception_id.encode("utf-8")
    except (OverflowError, UnicodeEncodeError):
        return False
    return len(exception_id) <= 64 and "\x00" not in exception_id


# --- history ---------------------------------------------------------------------------------

_HISTORY = "history"
_MAX_EVENT_ID = 2**31 - 1  # exception_events.id is an INTEGER on PostgreSQL


def encode_history_cursor(last_event_id: int) -> str:
    """The cursor of the history page after the event `last_event_id` (events are read in id order)."""
    return base64.urlsafe_b64encode(orjson.dumps([_HISTORY, last_event_id])).decode().rstrip("=")


def decode_history_cursor(cursor: str) -> int:
    """The last event id a history cursor names; BadCursor when it is not one we made."""
    invalid = BadCursor(f"invalid cursor {cursor[:80]!r}: pass next_cursor from a previous history page")
    try:
        keys = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise invalid from None
    if not isinstance(keys, list) or len(keys) != 2 or keys[0] != _HISTORY:
        raise invalid
    last = keys[1]
    if type(last) is not int or not 0 <= last <= _MAX_EVENT_ID:
        raise invalid
    return last
