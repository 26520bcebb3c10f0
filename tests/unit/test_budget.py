"""The record budget: what the detector copies into a record always fits (512 KiB), is always
writable and storable (no NUL, no lone surrogate, no integer beyond 64 bits, no infinity), is
never nested deeper than the API accepts, and every place cut is listed in `trimmed`."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.detector.budget import (
    DEAD_LETTER_BUDGET,
    EVENT_BUDGET,
    MAX_EVENT_DEPTH,
    MAX_TRIMMED_PATHS,
    RECORD_BUDGET,
    TOO_DEEP,
    clean_text,
    cut_key,
    fit_dead_letter,
    fit_event,
    fit_fields,
)
from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from loopgate_schemas.exceptions import ExceptionRecord

DETECTOR = Detector(load_detection_config())


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def example(name: str) -> dict[str, Any]:
    return json.loads((CONTRACT_EXAMPLES / name).read_text())


def test_an_ordinary_event_is_copied_as_it_is() -> None:
    event = example("content-generated.json")
    assert fit_event(event) == (event, [])


def test_a_long_string_is_cut_and_its_path_listed() -> None:
    event = example("content-generated.json")
    event["data"]["caption"] = "c" * 900_000
    fitted, trimmed = fit_event(event)
    assert trimmed == ["$.data.caption"]
    assert len(orjson.dumps(fitted)) <= EVENT_BUDGET
    assert fitted["data"]["caption"].startswith("ccc") and fitted["data"]["model"] == event["data"]["model"]


def test_many_long_strings_are_all_cut_within_the_budget() -> None:
    event = example("content-generated.json")
    event["data"]["product_claims"] = ["claim " * 1000 for _ in range(200)]
    fitted, trimmed = fit_event(event)
    assert len(orjson.dumps(fitted)) <= EVENT_BUDGET
    assert "$.data.product_claims[0]" in trimmed and len(trimmed) == MAX_TRIMMED_PATHS
    assert trimmed[-1].startswith("... and ")


def test_nul_and_lone_surrogates_are_replaced_and_listed() -> None:
    event = example("bid-adjusted.json")
    event["data"]["note"] = "a\x00b"
    event["data"]["odd key\x00"] = {"x": "\ud800"}
    fitted, trimmed = fit_event(event)
    assert fitted["data"]["note"] == "a\ufffdb"
    assert fitted["data"]["odd key\ufffd"] == {"x": "\ufffd"}
    assert "$.data.note" in trimmed and '$.data["odd key\ufffd"].x' in trimmed
    orjson.dumps(fitted)  # writable


def test_deep_nesting_is_replaced_by_a_marker_below_the_maximum_depth() -> None:
    event = example("bid-adjusted.json")
    deep: Any = 1
    for _ in range(150):
        deep = {"a": [deep]}
    event["data"]["deep"] = deep
    fitted, trimmed = fit_event(event)
    assert depth(fitted) <= MAX_EVENT_DEPTH
    assert len(trimmed) == 1 and trimmed[0].startswith("$.data.deep.a[0].a[0]")
    assert TOO_DEEP in orjson.dumps(fitted).decode()


def test_numbers_orjson_cannot_write_are_kept_as_text_or_null() -> None:
    event = example("bid-adjusted.json")
    event["data"]["huge"] = 2**64
    event["data"]["inf"] = math.inf
    fitted, trimmed = fit_event(event)
    assert fitted["data"]["huge"] == str(2**64) and fitted["data"]["inf"] is None
    assert set(trimmed) == {"$.data.huge", "$.data.inf"}


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_number_alone_is_null_in_the_copy_and_listed(value: float) -> None:
    """orjson would write it as null anyway; the copy says so too (found by a property test: the
    record held inf while its JSON held null)."""
    event = example("bid-adjusted.json")
    event["data"]["extra"] = {"big": value, "none": None}
    fitted, trimmed = fit_event(event)
    assert fitted["data"]["extra"] == {"big": None, "none": None}
    assert trimmed == ["$.data.extra.big"]


def test_an_event_with_plain_nulls_is_copied_as_it_is() -> None:
    event = example("bid-adjusted.json")
    event["data"]["note"] = None
    assert fit_event(event) == (event, [])


def test_a_megabyte_of_small_extra_fields_is_cut_to_fit() -> None:
    event = example("bid-adjusted.json")
    event["data"]["extra"] = {f"k{i}": i for i in range(100_000)}
    fitted, trimmed = fit_event(event)
    assert len(orjson.dumps(fitted)) <= EVENT_BUDGET
    assert "$.data.extra" in trimmed and fitted["data"]["bid_cpm"] == event["data"]["bid_cpm"]


def test_text_fields_are_cut_to_what_the_api_accepts_and_fingerprints_stay_distinct() -> None:
    fields = {
        "summary": "s" * 5000,
        "subject": "x\x00" * 400,
        "client_id": "c" * 300,
        "event_type": "t",
        "fingerprint": "rule:" + "p" * 600,
        "observed": {"claims": ["c" * 5000] * 100},
        "score": math.inf,
    }
    fitted = fit_fields(fields)
    assert len(fitted["summary"]) == 1000 and len(fitted["subject"]) == 255 and len(fitted["client_id"]) == 255
    assert "\x00" not in fitted["subject"]
    assert len(fitted["fingerprint"]) == 512
    assert fitted["fingerprint"] != fit_fields({"fingerprint": "rule:" + "p" * 601})["fingerprint"]
    assert len(fitted["observed"]["claims"]) == 64 and len(fitted["observed"]["claims"][0]) == 1000
    assert math.isfinite(fitted["score"])


def test_clean_text_and_cut_key_leave_ordinary_text_alone() -> None:
    assert clean_text("plain ünïcode 🎯") == "plain ünïcode 🎯"
    assert cut_key("short", 10) == "short"


@pytest.mark.parametrize(("key_len", "value_len"), [(10, 100), (10, 1_048_000), (900_000, 900_000), (0, 0)])
def test_a_dead_letter_is_cut_to_fit_the_producer_and_says_so(key_len: int, value_len: int) -> None:
    headers = [("error", b"e" * 500), ("source-topic", b"t")]
    key, value, truncated = fit_dead_letter(b"k" * key_len, b"v" * value_len, headers)
    size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)
    assert size <= DEAD_LETTER_BUDGET
    assert truncated == (key_len + value_len > 900_000)
    if not truncated:
        assert (len(key or b""), len(value or b"")) == (key_len, value_len)


# --- the records themselves, through the detector -----------------------------------------------


def records_for(source: str, doc: dict[str, Any]) -> list[ExceptionRecord]:
    outcome = DETECTOR.process(
        source, orjson.dumps(doc), topic=source, partition=0, offset=1, now=datetime(2026, 11, 24, tzinfo=UTC)
    )
    assert outcome.rejected is None
    return outcome.records


def assert_storable(record: ExceptionRecord) -> dict[str, Any]:
    data = orjson.dumps(record.model_dump(mode="json"))
    assert len(data) <= RECORD_BUDGET
    assert b"\\u0000" not in data
    doc = orjson.loads(data)
    ExceptionRecord.model_validate(doc)  # what the API validates
    assert depth(doc) <= 32
    return doc


def test_a_critical_brand_safety_record_survives_a_huge_claim_and_model_name() -> None:
    doc = example("content-generated.json")
    doc["data"].update(
        brand_safety_score=0.1,
        model="m" * 5000,
        product_claims=["claim " * 150_000],
        ignored={"nul": "\x00", "deep": nested(40)},
    )
    records = records_for(topics.CONTENT, doc)
    assert {"brand_safety", "claim_verification"} <= {r.rule_id for r in records}
    for record in records:
        stored = assert_storable(record)
        assert "$.data.product_claims[0]" in stored["trimmed"] and "$.data.ignored.nul" in stored["trimmed"]


def test_a_constraint_with_a_huge_detail_gives_its_record() -> None:
    doc = example("campaign-constraint.json")
    doc["data"].update(detail="d" * 1_000_000, constraint="c" * 100_000)
    [record] = [r for r in records_for(topics.BIDS, doc) if r.rule_id == "constraint"]
    stored = assert_storable(record)
    assert {"$.data.detail", "$.data.constraint"} <= set(stored["trimmed"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extra=json_values, long=st.integers(0, 700_000), nest=st.integers(0, 60))
def test_any_event_fits_the_budget_and_is_writable(extra: Any, long: int, nest: int) -> None:
    event = example("content-generated.json")
    for _ in range(nest):
        extra = [extra]
    event["data"].update(extra=extra, caption="x" * long)
    fitted, trimmed = fit_event(event)
    assert len(orjson.dumps(fitted)) <= EVENT_BUDGET
    assert depth(fitted) <= MAX_EVENT_DEPTH
    assert len(trimmed) <= MAX_TRIMMED_PATHS
    assert (long > EVENT_BUDGET) <= ("$.data.caption" in trimmed)
