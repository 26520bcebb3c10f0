"""Opaque pagination cursors: the (created_at, id) of the last item of a page, newest first.
New exceptions sort before every cursor, so paging stays stable while they arrive."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

import orjson


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: dt.datetime, exception_id: str) -> str:
    raw = orjson.dumps([created_at.astimezone(dt.UTC).isoformat(), exception_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, exception_id = orjson.loads(raw)
        when = dt.datetime.fromisoformat(created_at)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadCursor(f"invalid cursor {cursor[:80]!r}: pass next_cursor from a previous page") from None
    if when.tzinfo is None or not isinstance(exception_id, str) or not _plausible(when, exception_id):
        raise BadCursor(f"invalid cursor {cursor[:80]!r}: pass next_cursor from a previous page")
    return when.astimezone(dt.UTC), exception_id


def _plausible(when: dt.datetime, exception_id: str) -> bool:
    """Could we have made it: a time that converts to UTC, an id that fits the column and can be
    compared by every database (no NUL, no lone surrogate)."""
    try:
        when.astimezone(dt.UTC)
        exception_id.encode("utf-8")
    except (OverflowError, UnicodeEncodeError):
        return False
    return len(exception_id) <= 64 and "\x00" not in exception_id
