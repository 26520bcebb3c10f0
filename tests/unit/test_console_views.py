"""The console's pure parts: the caption with its problems marked, the SLA countdown, the
correction an operator's edits make."""

from __future__ import annotations

import datetime as dt

import pytest

from loopgate.common.settings import Sla
from loopgate.resolution_api.console.views import (
    BadEdit,
    Segment,
    caption_segments,
    correction_from_edits,
    sla_countdown,
)
from loopgate.resolution_api.exceptions.lifecycle import Status

T0 = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
POLICY = Sla(ack_seconds=3600, resolve_seconds=8 * 3600)


def test_the_caption_marks_claims_anywhere_and_the_text_past_the_limit() -> None:
    segments = caption_segments("Clinically proven. Truly clinically PROVEN!", limit=40, claims=["clinically proven"])
    assert segments == [
        Segment("Clinically proven", "claim"),
        Segment(". Truly ", None),
        Segment("clinically PROVEN", "claim"),
        Segment("!", "over-limit"),  # a claim keeps its own mark past the limit
    ]


def test_text_past_the_limit_is_marked_over_limit() -> None:
    assert caption_segments("abcdef", limit=4, claims=[]) == [Segment("abcd"), Segment("ef", "over-limit")]
    assert caption_segments("abc", limit=None, claims=[""]) == [Segment("abc")]


def test_an_open_exception_counts_down_to_its_acknowledgement_then_its_resolution() -> None:
    soon = sla_countdown(status=Status.OPEN, first_seen=T0, policy=POLICY, now=T0 + dt.timedelta(minutes=20))
    assert soon is not None and soon.text == "acknowledge within 40m" and not soon.overdue
    late = sla_countdown(status=Status.CLAIMED, first_seen=T0, policy=POLICY, now=T0 + dt.timedelta(hours=9))
    assert late is not None and late.text == "resolve overdue by 1h 00m" and late.overdue
    assert sla_countdown(status=Status.RESOLVED, first_seen=T0, policy=POLICY, now=T0) is None


def test_only_changed_fields_are_recorded_with_their_type_kept() -> None:
    before = {"caption": "old", "brand_safety_score": 0.41, "product_claims": ["a", "b"], "impressions": 10}
    edits = {"caption": "new", "brand_safety_score": "0.41", "product_claims": "a", "impressions": "12", "x": "y"}
    assert correction_from_edits(before, edits) == {
        "caption": {"before": "old", "after": "new"},
        "product_claims": {"before": ["a", "b"], "after": ["a"]},
        "impressions": {"before": 10, "after": 12},
    }


@pytest.mark.parametrize("text", ["lots", "nan", "inf"])
def test_a_number_that_is_not_one_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(BadEdit, match="brand_safety_score"):
        correction_from_edits({"brand_safety_score": 0.41}, {"brand_safety_score": text})
