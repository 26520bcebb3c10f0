"""Pagination cursors and If-Match parsing of the resolution API."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from loopgate.resolution_api.domain_errors import PreconditionFailed
from loopgate.resolution_api.exceptions.cursor import BadCursor, Position, Sort, decode_cursor, encode_cursor
from loopgate.resolution_api.http.conditional import etag, parse_if_match

T0 = dt.datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=dt.UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "position",
    [
        Position(Sort.NEWEST, T0, "exc-1"),
        Position(Sort.IMPACT, T0, "exc-1", impact_amount=12.5),
        Position(Sort.IMPACT, T0, "exc-1", impact_amount=None),
        Position(Sort.SEVERITY, T0, "exc-1", severity_rank=4, impact_amount=0.1),
        Position(Sort.SEVERITY, T0, "exc-1", severity_rank=0, impact_amount=None),
    ],
)
def test_a_cursor_round_trips_its_position(position: Position) -> None:
    assert decode_cursor(encode_cursor(position), position.sort) == position


def test_a_cursor_from_before_the_other_orders_continues_newest_first() -> None:
    legacy = _b64(b'["2026-11-24T09:00:00.123456+00:00", "exc-1"]')
    assert decode_cursor(legacy, Sort.NEWEST) == Position(Sort.NEWEST, T0, "exc-1")


@pytest.mark.parametrize("made_for", list(Sort))
@pytest.mark.parametrize("used_with", list(Sort))
def test_a_cursor_of_one_order_is_refused_by_another_naming_both(made_for: Sort, used_with: Sort) -> None:
    cursor = encode_cursor(Position(made_for, T0, "exc-1", severity_rank=2, impact_amount=3.0))
    if made_for is used_with:
        assert decode_cursor(cursor, used_with).sort is made_for
        return
    with pytest.raises(BadCursor, match=f"sort={made_for.value}, not sort={used_with.value}"):
        decode_cursor(cursor, used_with)


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00", "exc-1"]').decode(),  # naive time
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00+00:00", 3]').decode(),
        _b64(b'["impact", "2026-11-24T09:00:00+00:00", "exc-1", -1]'),  # negative amount
        _b64(b'["impact", "2026-11-24T09:00:00+00:00", "exc-1", "1"]'),
        _b64(b'["impact", "2026-11-24T09:00:00+00:00", "exc-1", 1e999]'),
        _b64(b'["impact", "2026-11-24T09:00:00+00:00", "exc-1", NaN]'),
        _b64(b'["impact", "2026-11-24T09:00:00+00:00", "exc-1"]'),  # a key missing
        _b64(b'["severity", "2026-11-24T09:00:00+00:00", "exc-1", 5, 1.0]'),  # no such rank
        _b64(b'["severity", "2026-11-24T09:00:00+00:00", "exc-1", true, 1.0]'),
        _b64(b'["severity", "2026-11-24T09:00:00+00:00", "exc-1", 4, null, 1]'),  # a key too many
        _b64(b'["newest", "2026-11-24T09:00:00+00:00", "exc-1"]'),
    ],
)
@pytest.mark.parametrize("sort", list(Sort))
def test_anything_else_is_a_bad_cursor(cursor: str, sort: Sort) -> None:
    with pytest.raises(BadCursor, match="invalid cursor"):
        decode_cursor(cursor, sort)


def test_the_etag_is_the_quoted_version() -> None:
    assert etag(3) == '"3"'


@pytest.mark.parametrize(
    ("header", "versions"),
    [(None, None), ("*", None), ('"3"', {3}), ("3", {3}), ('"3", "4"', {3, 4})],
)
def test_if_match_lists_the_versions_it_accepts(header: str | None, versions: set[int] | None) -> None:
    assert parse_if_match(header) == (None if versions is None else frozenset(versions))


@pytest.mark.parametrize("header", ['W/"3"', '"abc"', ""])
def test_an_if_match_that_is_not_our_etag_never_matches(header: str) -> None:
    with pytest.raises(PreconditionFailed):
        parse_if_match(header)
