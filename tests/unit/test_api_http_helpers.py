"""Pagination cursors and If-Match parsing of the resolution API."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from loopgate.resolution_api.conditional import etag, parse_if_match
from loopgate.resolution_api.cursor import BadCursor, decode_cursor, encode_cursor
from loopgate.resolution_api.domain_errors import PreconditionFailed

T0 = dt.datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=dt.UTC)


def test_a_cursor_round_trips_its_position() -> None:
    assert decode_cursor(encode_cursor(T0, "exc-1")) == (T0, "exc-1")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00", "exc-1"]').decode(),  # naive time
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00+00:00", 3]').decode(),
    ],
)
def test_anything_else_is_a_bad_cursor(cursor: str) -> None:
    with pytest.raises(BadCursor, match="invalid cursor"):
        decode_cursor(cursor)


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
