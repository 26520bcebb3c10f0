"""The detector's decision for one message, independent of Kafka and faust.

`Detector.process` validates a message, runs the rules, the anomaly baselines and audit
sampling, and returns the exception records to publish (or the reason to dead-letter it).
The faust app, the evaluator and the benchmark all call this one function.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from loopgate.detector.anomaly import EMPTY, Baseline
from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules import Firing, evaluate_threshold_rules
from loopgate.detector.rules.anomalies import check_bid_anomaly, check_delivery_anomaly
from loopgate.detector.sampling import sample_for_audit
from loopgate_schemas import topics
from loopgate_schemas.events import (
    BidAdjusted,
    CloudEvent,
    ContentGenerated,
    DeliveryReport,
    EventRejected,
    parse_event,
)
from loopgate_schemas.exceptions import EventRef, ExceptionRecord, Kind, exception_id_for, fingerprint_for

# Baseline tables hold plain lists (JSON in the changelog):
#   bids:     [last_offset, count, mean, var, *fired]
#   delivery: [last_offset, imp_count, imp_mean, imp_var, ctr_count, ctr_mean, ctr_var, *fired]
# `fired`: for each of the entity's last FIRED_KEPT anomalies, its offset followed by the baseline
# it was judged against (flat, so the value stays a list of numbers).
BaselineTable = MutableMapping[str, list[float]]
FIRED_KEPT = 16


def _raw_event(value: bytes, event: CloudEvent) -> dict[str, Any]:
    """The event as published, for the record; its validated fields when the original holds what
    orjson refuses (pydantic's parser takes integers beyond 64 bits in ignored extra fields)."""
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError:
        return event.model_dump(mode="json")
    return raw if isinstance(raw, dict) else event.model_dump(mode="json")


def _unpack_fired(flat: list[float], width: int) -> dict[int, list[float]]:
    step = width + 1
    return {int(flat[i]): list(flat[i + 1:i + step]) for i in range(0, len(flat) - width, step)}


def _pack_fired(fired: dict[int, list[float]]) -> list[float]:
    return [x for offset in sorted(fired)[-FIRED_KEPT:] for x in (offset, *fired[offset])]


@dataclass(slots=True)
class Outcome:
    """What to do with one message: publish `records`; dead-letter it when `rejected` is set."""

    event: CloudEvent | None = None
    records: list[ExceptionRecord] = field(default_factory=list)
    rejected: EventRejected | None = None
    sampled: bool = False


class Detector:
    def __init__(self, config: DetectionConfig, *, max_event_bytes: int | None = None) -> None:
        self.config = config
        self.max_event_bytes = max_event_bytes
        sampling = config.sampling
        self._base_rates = {source: sampling.base_rate(source) for source in topics.UPSTREAM}

    def process(
        self,
        source: str,
        value: bytes,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None = None,
        bid_baselines: BaselineTable | None = None,
        delivery_baselines: BaselineTable | None = None,
        now: datetime | None = None,
    ) -> Outcome:
        """`source` is the contract topic name; `topic` the actual one (with any prefix)."""
        try:
            event = parse_event(source, value, max_bytes=self.max_event_bytes)
        except EventRejected as rejected:
            ref = EventRef(topic=topic, partition=partition, offset=offset)
            record = self._schema_violation(source, rejected, ref, now or datetime.now(UTC))
            return Outcome(rejected=rejected, records=[record])

        firings = evaluate_threshold_rules(event, self.config)
        if isinstance(event, BidAdjusted) and bid_baselines is not None:
            firing = self._bid_anomaly(event, offset, bid_baselines)
            if firing:
                firings.append(firing)
        elif isinstance(event, DeliveryReport) and delivery_baselines is not None:
            firing = self._delivery_anomaly(event, offset, delivery_baselines)
            if firing:
                firings.append(firing)

        sampling = self.config.sampling
        confidence = event.data.model_confidence if isinstance(event, (BidAdjusted, ContentGenerated)) else None
        sampled = sample_for_audit(
            event.id, confidence, self._base_rates[source],
            low_confidence=sampling.low_confidence, boost=sampling.boost,
        )
        if sampled:
            firings.append(self._audit_firing(event, confidence))
        if not firings:
            return Outcome(event=event)
        raw = _raw_event(value, event)
        ref = EventRef(topic=topic, partition=partition, offset=offset)
        detected_at = now or datetime.now(UTC)
        records = [self._record(f, event, raw, source, ref, detected_at) for f in firings]
        return Outcome(event=event, records=records, sampled=sampled)

    # --- anomaly state ---------------------------------------------------------------------
    # A redelivered event (offset <= the entity's last applied offset: the worker died after the
    # table's changelog write but before the source offset commit) must neither move the baseline
    # again nor be judged against a baseline that already holds it. So the table keeps, for the
    # entity's last few anomalies, the baseline each was judged against: a redelivered event fires
    # exactly as it did the first time (from that baseline), and a redelivered clean event stays clean.

    def _bid_anomaly(self, event: BidAdjusted, offset: int, table: BaselineTable) -> Firing | None:
        key = event.data.line_item_id
        stored = table.get(key)
        if stored is None:
            last_offset, baseline, tail = -1, EMPTY, []
        else:
            last_offset, baseline, tail = int(stored[0]), Baseline(int(stored[1]), stored[2], stored[3]), stored[4:]
        if offset <= last_offset:
            before = _unpack_fired(tail, 3).get(offset)
            if before is None:
                return None
            return check_bid_anomaly(event, Baseline(int(before[0]), *before[1:]), self.config.anomaly)[1]
        new, firing = check_bid_anomaly(event, baseline, self.config.anomaly)
        if firing is not None:  # the fired history is only unpacked when it changes (hot path)
            fired = _unpack_fired(tail, 3)
            fired[offset] = list(baseline)
            tail = _pack_fired(fired)
        table[key] = [offset, new.count, new.mean, new.var, *tail]
        return firing

    def _delivery_anomaly(self, event: DeliveryReport, offset: int, table: BaselineTable) -> Firing | None:
        key = event.data.placement_id
        stored = table.get(key)
        if stored is None:
            last_offset, imp, ctr, tail = -1, EMPTY, EMPTY, []
        else:
            last_offset = int(stored[0])
            imp = Baseline(int(stored[1]), stored[2], stored[3])
            ctr = Baseline(int(stored[4]), stored[5], stored[6])
            tail = stored[7:]
        if offset <= last_offset:
            before = _unpack_fired(tail, 6).get(offset)
            if before is None:
                return None
            old_imp, old_ctr = Baseline(int(before[0]), *before[1:3]), Baseline(int(before[3]), *before[4:6])
            return check_delivery_anomaly(event, old_imp, old_ctr, self.config.anomaly)[2]
        new_imp, new_ctr, firing = check_delivery_anomaly(event, imp, ctr, self.config.anomaly)
        if firing is not None:
            fired = _unpack_fired(tail, 6)
            fired[offset] = [*imp, *ctr]
            tail = _pack_fired(fired)
        if new_imp is not imp or new_ctr is not ctr:
            table[key] = [offset, new_imp.count, new_imp.mean, new_imp.var, new_ctr.count, new_ctr.mean,
                          new_ctr.var, *tail]
        return firing

    # --- records ---------------------------------------------------------------------------

    def _audit_firing(self, event: CloudEvent, confidence: float | None) -> Firing:
        conf = f", model confidence {confidence:.2f}" if confidence is not None else ""
        client = event.data.client_id
        return Firing(
            "audit_sample",
            Kind.AUDIT_SAMPLE,
            event.subject,
            f"Audit sample: review {event.type} {event.id} on {event.subject} ({client}{conf})",
            {"model_confidence": confidence} if confidence is not None else {},
        )

    def _record(
        self, f: Firing, event: CloudEvent, raw: dict[str, Any], source: str, ref: EventRef, detected_at: datetime
    ) -> ExceptionRecord:
        # Audit samples are never grouped: each sampled event is its own review item.
        group_subject = f"{f.subject}:{event.id}" if f.kind is Kind.AUDIT_SAMPLE else f.subject
        return ExceptionRecord(
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
            event=raw,
            event_ref=ref,
            detected_at=detected_at,
        )

    def _schema_violation(
        self, source: str, rejected: EventRejected, ref: EventRef, detected_at: datetime
    ) -> ExceptionRecord:
        return ExceptionRecord(
            exception_id=exception_id_for(f"{ref.topic}/{ref.partition}/{ref.offset}", "schema_violation"),
            fingerprint=fingerprint_for("schema_violation", f"{source}:{rejected.kind}"),
            kind=Kind.DATA_QUALITY,
            rule_id="schema_violation",
            severity=self.config.severity_of("schema_violation"),
            source=source,
            subject=source,
            summary=f"Message at {ref.topic}[{ref.partition}]@{ref.offset} is not a valid event: {rejected.reason}"[
                :1000
            ],
            observed={"error_kind": rejected.kind, "error": rejected.reason},
            event_ref=ref,
            detected_at=detected_at,
        )
