"""The detector builds each record once: an ExceptionRecord constructed without validation from the
fields the budget fitted, serialized by orjson straight from its fields. For simulated streams of
every event type, with anomalies and bad messages, its records validate as ExceptionRecord and are
byte for byte what the old path gave (each record validated, dumped and serialized), kept here as
the reference.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.detector.budget import fit_fields
from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector, record_json
from loopgate.detector.rules import Firing
from loopgate_schemas import topics
from loopgate_schemas.events import CloudEvent, EventRejected
from loopgate_schemas.exceptions import EventRef, ExceptionRecord, Kind, exception_id_for, fingerprint_for
from loopgate_tools.simulator.generator import generate
from loopgate_tools.simulator.malformed import malformed
from tests.unit.review_policies import with_review_policies
from tests.unit.test_validation_properties import MAX_BYTES, VALID, messages, upstream_topics

# With review policies, so that approval items are among the records (approval_gate is a rule too).
CONFIG = with_review_policies(load_detection_config())
NOW = datetime(2026, 11, 24, 9, 16, 41, 123456, tzinfo=UTC)

# --- the old path, kept as the reference ---------------------------------------------------------


class OldDetector(Detector):
    """The detector with the old record construction: validated, then dumped by the caller."""

    def _record(
        self,
        f: Firing,
        event: CloudEvent,
        raw: dict[str, Any],
        trimmed: list[str],
        source: str,
        ref: EventRef,
        detected_at: datetime,
    ) -> ExceptionRecord:
        group_subject = f"{f.subject}:{event.id}" if f.kind in (Kind.AUDIT_SAMPLE, Kind.APPROVAL) else f.subject
        return ExceptionRecord(
            **fit_fields(
                dict(
                    exception_id=exception_id_for(event.id, f.rule_id),
                    fingerprint=fingerprint_for(f.rule_id, group_subject),
                    kind=f.kind,
                    rule_id=f.rule_id,
                    severity=self.config.severity_of(f.rule_id),
                    source=source,
                    event_type=event.type,
                    subject=f.subject,
                    client_id=event.data.client_id,
                    summary=f.summary,
                    observed=f.observed,
                    threshold=f.threshold,
                    expected=f.expected,
                    score=f.score,
                    impact=f.impact.model_dump() if f.impact else None,
                    event=raw,
                    event_ref=EventRef(topic=ref.topic, partition=ref.partition, offset=ref.offset),
                    detected_at=detected_at,
                    trimmed=trimmed or None,
                    deadline=f.deadline,
                )
            )
        )

    def _schema_violation(
        self, source: str, rejected: EventRejected, ref: EventRef, detected_at: datetime
    ) -> ExceptionRecord:
        return ExceptionRecord(
            **fit_fields(
                dict(
                    exception_id=exception_id_for(f"{ref.topic}/{ref.partition}/{ref.offset}", "schema_violation"),
                    fingerprint=fingerprint_for("schema_violation", f"{source}:{rejected.kind}"),
                    kind=Kind.DATA_QUALITY,
                    rule_id="schema_violation",
                    severity=self.config.severity_of("schema_violation"),
                    source=source,
                    subject=source,
                    summary=f"Message at {ref.topic}[{ref.partition}]@{ref.offset} is not a valid event: "
                    f"{rejected.reason}",
                    observed={"error_kind": rejected.kind, "error": rejected.reason},
                    event_ref=EventRef(topic=ref.topic, partition=ref.partition, offset=ref.offset),
                    detected_at=detected_at,
                )
            )
        )


def old_record_json(record: ExceptionRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


# --- records built once ----------------------------------------------------------------------------


def run_both(
    stream: list[tuple[str, bytes]], max_bytes: int | None = MAX_BYTES
) -> tuple[list[bytes], list[bytes], set[str]]:
    """Every record of `stream` through the detector, and through the old path (separate baselines)."""
    new, old = Detector(CONFIG, max_event_bytes=max_bytes), OldDetector(CONFIG, max_event_bytes=max_bytes)
    rules: set[str] = set()
    new_tables: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    old_tables: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    new_out, old_out = [], []
    for offset, (topic, value) in enumerate(stream):
        kwargs: dict[str, Any] = dict(topic=f"p-{topic}", partition=offset % 3, offset=offset, now=NOW)
        outcome = new.process(topic, value, bid_baselines=new_tables[0], delivery_baselines=new_tables[1], **kwargs)
        expected = old.process(topic, value, bid_baselines=old_tables[0], delivery_baselines=old_tables[1], **kwargs)
        assert (outcome.rejected is None) == (expected.rejected is None)
        assert outcome.event == expected.event and outcome.sampled == expected.sampled
        for record in outcome.records:
            encoded = record_json(record)
            assert ExceptionRecord.model_validate(orjson.loads(encoded)) == ExceptionRecord.model_validate(record)
            new_out.append(encoded)
            rules.add(record.rule_id)
        old_out.extend(old_record_json(r) for r in expected.records)
    return new_out, old_out, rules


def test_records_of_every_rule_are_valid_and_byte_for_byte_the_old_paths() -> None:
    stream = [(e.topic, e.value) for e in generate(3000, anomaly_share=0.3, seed=11)]
    stream += [(m.topic, m.value) for m in malformed(40, seed=11)]
    new, old, rules = run_both(stream)
    assert new == old
    assert rules == set(CONFIG.severity)  # every rule, audit samples and schema violations included


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    share=st.floats(0.0, 1.0),
    extras=st.lists(st.tuples(upstream_topics, messages), max_size=20),
)
def test_records_of_any_simulated_stream_are_byte_for_byte_the_old_paths(
    seed: int, share: float, extras: list[tuple[str, bytes]]
) -> None:
    stream = [(e.topic, e.value) for e in generate(150, anomaly_share=share, seed=seed)] + extras
    new, old, _ = run_both(stream)
    assert new == old


def test_a_huge_event_is_fitted_and_serialized_as_before() -> None:
    doc = next(json.loads(json.dumps(d)) for d in VALID if d["type"] == "content.generated")
    doc["data"].update(brand_safety_score=0.1, product_claims=["claim " * 150_000], ignored={"nul": "\x00"})
    new, old, rules = run_both([(topics.CONTENT, orjson.dumps(doc))], max_bytes=None)
    assert new == old and "brand_safety" in rules
