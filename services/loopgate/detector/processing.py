"""The detector's decision for one message, independent of Kafka and faust.

`Detector.process` validates a message, runs the rules, the anomaly baselines and audit
sampling, and returns the exception records to publish (or the reason to dead-letter it).
The faust app, the evaluator and the benchmark all call this one function.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from loopgate.detector.anomaly import EMPTY, Baseline, expected_of, is_finite_state
from loopgate.detector.budget import fit_event, fit_fields
from loopgate.detector.config import DetectionConfig
from loopgate.detector.review_config import Policy
from loopgate.detector.review_policy import approval_firing, audit_rate, audits, hold_for, holds, is_held_policy
from loopgate.detector.rules import THRESHOLD_RULES, Firing, evaluate_threshold_rules
from loopgate.detector.rules.anomalies import check_bid_anomaly, check_delivery_anomaly
from loopgate.detector.sampling import AdaptiveRates, sample_for_audit
from loopgate.detector.stages import NO_CLOCK, StageClock
from loopgate_schemas.events import (
    BidAdjusted,
    CloudEvent,
    ContentGenerated,
    DeliveryReport,
    EventRejected,
    parse_event,
)
from loopgate_schemas.exceptions import EventRef, ExceptionRecord, Kind, exception_id_for, fingerprint_for

log = logging.getLogger(__name__)


# Baseline tables hold plain lists (JSON in the changelog):
#   bids:     [last_offset, count, mean, var, partition, run, run_mean, 3, trend, 3, *fired]
#   delivery: [last_offset, imp_count, imp_mean, imp_var, ctr_count, ctr_mean, ctr_var, partition,
#              imp_run, imp_run_mean, ctr_run, ctr_run_mean, 3, imp_trend, ctr_trend, 3, *fired]
# `fired`: for each of the entity's last FIRED_KEPT anomalies, its offset followed by the baseline
# (count, expected value, var) it was judged against (flat, so the value stays a list of numbers;
# the expected value is the mean moved on by the trend, so a baseline without a trend judges a
# redelivery exactly as the first time). Older values still read: written before the trends were kept
# they have no trend slots (their trends start at 0), before the runs were kept no run slots either
# (their runs start at 0), and before the partition was kept no `partition` slot. The length past the
# states, modulo the fired width + 1, tells which: 0 no partition, 1 partition, 1 + 2 * states
# partition and runs, 2 partition, runs and trends, whose TREND_TAG on both sides makes that remainder
# one no older layout has (so an older detector discards such a value, counted, never misreads it).
class BaselineTable(Protocol):
    """Where baselines live: a faust table's batch view in the worker, a dict in tests and tools.
    `get` answers whatever was stored (an old changelog may hold anything: read_stored checks it)."""

    def get(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Stored, /) -> None: ...


FIRED_KEPT = 16
TREND_TAG = 3  # the third layout: runs and trends
BID_WIDTH, DELIVERY_WIDTH = 3, 6  # numbers in one fired entry's baselines (count, mean, var each)


def _raw_event(value: bytes, event: CloudEvent) -> dict[str, Any]:
    """The event as published, for the record. orjson refuses some of what pydantic's parser takes
    in ignored extra fields (integers beyond 64 bits, 1e309, NaN): the standard parser reads those;
    the validated fields are the last resort."""
    for loads in (orjson.loads, json.loads):
        try:
            raw = loads(value)
        except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
            continue
        return raw if isinstance(raw, dict) else event.model_dump(mode="json")
    return event.model_dump(mode="json")


def _finite_number(x: Any) -> bool:
    return (type(x) is float and math.isfinite(x)) or (type(x) is int and abs(x) < 2**63)


@dataclass(slots=True)
class Stored:
    """An entity's table value: where it was last applied, its states, fired history.

    The detector keeps what it writes in memory as a Stored (never changed once written: a new one
    replaces it), so reading it back is free; only a value restored from the changelog (a JSON
    list) is checked and unpacked, by read_stored. `to_list` is the changelog's form of it."""

    partition: int | None  # None: written before the partition was kept (compare offsets as before)
    last_offset: int
    states: list[Baseline]
    fired: list[float]

    def to_list(self) -> list[float]:
        """[last_offset, (count, mean, var) per state, partition, (run, run_mean) per state,
        TREND_TAG, trend per state, TREND_TAG, *fired]"""
        counts = [x for b in self.states for x in (b.count, b.mean, b.var)]
        runs = [x for b in self.states for x in (b.run, b.run_mean)]
        trends = [b.trend for b in self.states]
        return [self.last_offset, *counts, self.partition, *runs, TREND_TAG, *trends, TREND_TAG, *self.fired]  # type: ignore[list-item]


def encode_baseline(value: Any) -> bytes:
    """A table value as its changelog record's JSON (a Stored, or a list as restored)."""
    return orjson.dumps(value.to_list() if type(value) is Stored else value)


def read_stored(stored: Any, states: int) -> Stored | None:
    """The table value, or None when it is not one (garbage restored from an old changelog, a
    non-finite baseline from before the guard): the entity starts afresh, never fails per event."""
    if type(stored) is Stored:  # written by this worker: sound by construction
        return stored if len(stored.states) == states else None
    width = 3 * states
    if not isinstance(stored, list) or len(stored) < 1 + width:
        return None
    if not all(_finite_number(x) for x in stored):
        return None
    rest = stored[1 + width :]
    # 0: no partition, 1: partition, 1 + 2 * states: partition and runs, 2: partition, runs and trends
    head = len(rest) % (width + 1)
    if head == 2:
        head = 3 + 3 * states
        if len(rest) < head or rest[1 + 2 * states] != TREND_TAG or rest[head - 1] != TREND_TAG:
            return None
        trends = rest[2 + 2 * states : head - 1]
    elif head in (0, 1, 1 + 2 * states):
        trends = [0.0] * states
    else:
        return None
    runs = rest[1 : 1 + 2 * states] if head > 1 else [0, 0.0] * states
    baselines = [
        Baseline(
            int(stored[1 + 3 * i]), stored[2 + 3 * i], stored[3 + 3 * i], int(runs[2 * i]), runs[2 * i + 1], trends[i]
        )
        for i in range(states)
    ]
    if not all(is_finite_state(b) for b in baselines):
        return None
    partition = int(rest[0]) if head else None
    return Stored(partition, int(stored[0]), baselines, rest[head:])


def judged_against(b: Baseline) -> list[float]:
    """A fired entry's baseline: rebuilt as Baseline(count, expected, var) it judges the value as `b` did."""
    return [b.count, expected_of(b), b.var]


def _unpack_fired(flat: list[float], width: int) -> dict[int, list[float]]:
    step = width + 1
    return {int(flat[i]): list(flat[i + 1 : i + step]) for i in range(0, len(flat) - width, step)}


def _pack_fired(fired: dict[int, list[float]]) -> list[float]:
    return [x for offset in sorted(fired)[-FIRED_KEPT:] for x in (offset, *fired[offset])]


# --- records, built once ---------------------------------------------------------------------
# The detector's records are ExceptionRecords built without validation (model_construct) from
# fields the budget fitted, and serialized by orjson straight from the model's fields: by
# construction they are what ExceptionRecord validates, which tests/unit/test_records_built_once.py checks
# for every rule, byte for byte against validating, dumping and serializing.


def build_record(fields: dict[str, Any]) -> ExceptionRecord:
    """The record of `fields` (as fit_fields returns them, with the types the model holds)."""
    score = fields.get("score")
    if score is not None:
        fields["score"] = float(score)  # what validation makes of an integer score
    return ExceptionRecord.model_construct(**fields)


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):  # event_ref
        return value.__dict__
    if isinstance(value, datetime):  # written as pydantic writes it (orjson would write +00:00)
        return to_jsonable_python(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def record_json(record: ExceptionRecord) -> bytes:
    """The record's JSON, equal to orjson.dumps(record.model_dump(mode="json"))."""
    return orjson.dumps(record.__dict__, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class Upstream(Protocol):
    """One upstream message as the batch path reads it (aiokafka's ConsumerRecord is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


# Rejection kinds of a message the detector failed on (not the sender's fault: no schema_violation record).
FAILURE_STAGES = frozenset({"internal_error", "serialize_error", "produce_error"})


def failure(stage: str, err: BaseException) -> EventRejected:
    """The rejection of a message the detector failed on at `stage`: dead-lettered with the stage
    in `error-kind`, the stream goes on."""
    return EventRejected(stage, f"{stage.replace('_', ' ')}: {type(err).__name__}: {err}"[:500])


@dataclass(slots=True)
class Outcome:
    """What to do with one message: publish `records`; dead-letter it when `rejected` is set."""

    event: CloudEvent | None = None
    records: list[ExceptionRecord] = field(default_factory=list)
    rejected: EventRejected | None = None
    sampled: bool = False
    discarded_states: int = 0  # unreadable table values met (and started afresh) for this message


def _internal_error(err: Exception) -> Outcome:
    log.error("internal error on a message: %r", err, exc_info=err)
    return Outcome(rejected=failure("internal_error", err))


def _fail(outcome: Outcome, err: Exception) -> None:
    """A bug met on one message in a later stage: it is dead-lettered, its records dropped."""
    log.error("internal error on a message: %r", err, exc_info=err)
    outcome.rejected = failure("internal_error", err)
    outcome.records = []


class Detector:
    """`rates`, when given, answers the audit base rates the verdicts call for now (the worker's
    outcome reader): an event is sampled at the higher of its source's and its model's rate."""

    def __init__(
        self,
        config: DetectionConfig,
        *,
        max_event_bytes: int | None = None,
        rates: Callable[[], AdaptiveRates] | None = None,
    ) -> None:
        self.config = config
        self.max_event_bytes = max_event_bytes
        self._base_rates = config.sampling.base_rates()
        self._rates = rates
        self._bid_volume = config.impact.bid_impressions_per_hour

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
            ref = EventRef.model_construct(topic=topic, partition=partition, offset=offset)
            record = self._schema_violation(source, rejected, ref, now or datetime.now(UTC))
            return Outcome(rejected=rejected, records=[record])

        outcome = Outcome(event=event)
        firings = evaluate_threshold_rules(event, self.config)
        if isinstance(event, BidAdjusted) and bid_baselines is not None:
            firing = self._bid_anomaly(event, partition, offset, bid_baselines, outcome)
            if firing:
                firings.append(firing)
        elif isinstance(event, DeliveryReport) and delivery_baselines is not None:
            firing = self._delivery_anomaly(event, partition, offset, delivery_baselines, outcome)
            if firing:
                firings.append(firing)

        sampling = self.config.sampling
        confidence = event.data.model_confidence if isinstance(event, (BidAdjusted, ContentGenerated)) else None
        policy = self.config.review.policy_for(source, event.data.client_id)
        sampled = False
        if audits(policy):
            base_rate = audit_rate(policy, self._base_rates[source])
            if self._rates is not None:
                model = event.data.model if isinstance(event, ContentGenerated) else None
                base_rate = self._rates().base_rate(source, model, base_rate)
            sampled = sample_for_audit(
                event.id,
                confidence,
                base_rate,
                low_confidence=sampling.low_confidence,
                boost=sampling.boost,
            )
        if sampled:
            firings.append(self._audit_firing(event, confidence))
        self._hold(policy, event, value, confidence, firings)
        if not firings:
            return outcome
        raw, trimmed = fit_event(_raw_event(value, event))  # once per message, shared by its records
        ref = EventRef.model_construct(topic=topic, partition=partition, offset=offset)
        detected_at = now or datetime.now(UTC)
        outcome.records = [self._record(f, event, raw, trimmed, source, ref, detected_at) for f in firings]
        outcome.sampled = sampled
        return outcome

    # --- the fast path: a batch, stage by stage ---------------------------------------------
    # The same decisions as `process`, which stays the reference (tests/unit/test_detector_differential.py
    # holds the two byte for byte): each stage runs over the whole batch before the next, so the
    # worker's CPU time per stage is read once per batch (stages.py), and per-message work that
    # does not depend on the message (the audit rates, the clock) is done once per batch. Baselines
    # still see each entity's events in offset order: the baselines stage is one pass in batch order.

    def process_batch(
        self,
        batch: Sequence[tuple[str, Upstream]],
        *,
        bid_baselines: BaselineTable,
        delivery_baselines: BaselineTable,
        now: datetime | None = None,
        stages: StageClock = NO_CLOCK,
    ) -> list[Outcome]:
        """One Outcome per (source, message), in order. A message whose handling raises (a bug) is
        that message's alone: its outcome is rejected as `internal_error`, without records."""
        stages.start()
        config, max_bytes = self.config, self.max_event_bytes
        outcomes: list[Outcome] = []
        append = outcomes.append
        for source, msg in batch:
            try:
                append(Outcome(event=parse_event(source, msg.value or b"", max_bytes=max_bytes)))
            except EventRejected as rejected:
                append(Outcome(rejected=rejected))
            except Exception as err:
                append(_internal_error(err))
        stages.lap("validate")

        firings: list[list[Firing] | None] = [None] * len(outcomes)
        rules = THRESHOLD_RULES
        for i, outcome in enumerate(outcomes):
            event = outcome.event
            if event is not None and outcome.rejected is None:
                try:
                    firings[i] = rules[event.type](event, config)
                except Exception as err:
                    _fail(outcome, err)
        stages.lap("rules")

        for i, outcome in enumerate(outcomes):
            event, found = outcome.event, firings[i]
            if found is None or not isinstance(event, (BidAdjusted, DeliveryReport)):
                continue
            msg = batch[i][1]
            try:
                if isinstance(event, BidAdjusted):
                    firing = self._bid_anomaly(event, msg.partition, msg.offset, bid_baselines, outcome)
                else:
                    firing = self._delivery_anomaly(event, msg.partition, msg.offset, delivery_baselines, outcome)
            except Exception as err:
                _fail(outcome, err)
                firings[i] = None
                continue
            if firing:
                found.append(firing)
        stages.lap("baselines")

        sampling, base_rates, review = self.config.sampling, self._base_rates, self.config.review
        rates = self._rates() if self._rates is not None else None  # one answer for the batch
        sampled_at: list[bool] = [False] * len(outcomes)
        for i, outcome in enumerate(outcomes):
            event, found = outcome.event, firings[i]
            if found is None or event is None:
                continue
            source = batch[i][0]
            try:
                confidence = event.data.model_confidence if isinstance(event, (BidAdjusted, ContentGenerated)) else None
                policy = review.policy_for(source, event.data.client_id) if review.root else None
                if audits(policy):
                    base_rate = audit_rate(policy, base_rates[source])
                    if rates is not None:
                        model = event.data.model if isinstance(event, ContentGenerated) else None
                        base_rate = rates.base_rate(source, model, base_rate)
                    if sample_for_audit(
                        event.id, confidence, base_rate, low_confidence=sampling.low_confidence, boost=sampling.boost
                    ):
                        found.append(self._audit_firing(event, confidence))
                        sampled_at[i] = True
                self._hold(policy, event, batch[i][1].value or b"", confidence, found)
            except Exception as err:
                _fail(outcome, err)
                firings[i] = None
        stages.lap("sampling")

        detected_at = now or datetime.now(UTC)
        for i, outcome in enumerate(outcomes):
            found, refused = firings[i], outcome.rejected
            if not found and refused is None:
                continue
            source, msg = batch[i]
            ref = EventRef.model_construct(topic=msg.topic, partition=msg.partition, offset=msg.offset)
            try:
                if found:
                    event = outcome.event
                    assert event is not None
                    raw, trimmed = fit_event(_raw_event(msg.value or b"", event))
                    outcome.records = [self._record(f, event, raw, trimmed, source, ref, detected_at) for f in found]
                    outcome.sampled = sampled_at[i]
                elif refused is not None and refused.kind not in FAILURE_STAGES:
                    outcome.records = [self._schema_violation(source, refused, ref, detected_at)]
            except Exception as err:
                _fail(outcome, err)
        stages.lap("records")
        return outcomes

    # --- anomaly state ---------------------------------------------------------------------
    # A redelivered event (offset <= the entity's last applied offset: the worker died after the
    # table's changelog write but before the source offset commit) must neither move the baseline
    # again nor be judged against a baseline that already holds it. So the table keeps, for the
    # entity's last few anomalies, the baseline each was judged against: a redelivered event fires
    # exactly as it did the first time (from that baseline), and a redelivered clean event stays clean.

    def _restore(self, table: BaselineTable, key: str, states: int, outcome: Outcome) -> tuple[Stored | None, bool]:
        """The entity's stored value, and whether an unreadable one was discarded (to overwrite)."""
        stored = table.get(key)
        if stored is None:
            return None, False
        restored = read_stored(stored, states)
        if restored is None:
            outcome.discarded_states += 1
        return restored, restored is None

    def _bid_anomaly(
        self, event: BidAdjusted, partition: int, offset: int, table: BaselineTable, outcome: Outcome
    ) -> Firing | None:
        key = event.data.line_item_id
        stored, _ = self._restore(table, key, 1, outcome)
        baseline, tail = (stored.states[0], stored.fired) if stored else (EMPTY, [])
        # Offsets compare within a partition only (an event keyed wrongly lands on another one).
        if stored is not None and stored.partition in (None, partition) and offset <= stored.last_offset:
            before = _unpack_fired(tail, BID_WIDTH).get(offset)
            if before is None:
                return None
            old = Baseline(int(before[0]), before[1], before[2])
            return check_bid_anomaly(event, old, self.config.anomaly, impressions_per_hour=self._bid_volume)[1]
        new, firing = check_bid_anomaly(event, baseline, self.config.anomaly, impressions_per_hour=self._bid_volume)
        if firing is not None:  # the fired history is only unpacked when it changes (hot path)
            fired = _unpack_fired(tail, BID_WIDTH)
            fired[offset] = judged_against(baseline)
            tail = _pack_fired(fired)
        table[key] = Stored(partition, offset, [new], tail)
        return firing

    def _delivery_anomaly(
        self, event: DeliveryReport, partition: int, offset: int, table: BaselineTable, outcome: Outcome
    ) -> Firing | None:
        key = event.data.placement_id
        stored, discarded = self._restore(table, key, 2, outcome)
        imp, ctr, tail = (stored.states[0], stored.states[1], stored.fired) if stored else (EMPTY, EMPTY, [])
        if stored is not None and stored.partition in (None, partition) and offset <= stored.last_offset:
            before = _unpack_fired(tail, DELIVERY_WIDTH).get(offset)
            if before is None:
                return None
            old_imp, old_ctr = (
                Baseline(int(before[0]), before[1], before[2]),
                Baseline(int(before[3]), before[4], before[5]),
            )
            return check_delivery_anomaly(event, old_imp, old_ctr, self.config.anomaly)[2]
        new_imp, new_ctr, firing = check_delivery_anomaly(event, imp, ctr, self.config.anomaly)
        if firing is not None:
            fired = _unpack_fired(tail, DELIVERY_WIDTH)
            fired[offset] = [*judged_against(imp), *judged_against(ctr)]
            tail = _pack_fired(fired)
        if new_imp is not imp or new_ctr is not ctr or discarded:
            table[key] = Stored(partition, offset, [new_imp, new_ctr], tail)
        return firing

    # --- records ---------------------------------------------------------------------------

    def _hold(
        self, policy: Policy | None, event: CloudEvent, value: bytes, confidence: float | None, firings: list[Firing]
    ) -> None:
        """An approval item beside the firings when the client's review policy holds the event."""
        if is_held_policy(policy) and holds(policy, confidence, firings, self.config.severity_of):
            firings.append(approval_firing(event, hold_for(policy, _raw_event(value, event)), firings))

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
        self,
        f: Firing,
        event: CloudEvent,
        raw: dict[str, Any],
        trimmed: list[str],
        source: str,
        ref: EventRef,
        detected_at: datetime,
    ) -> ExceptionRecord:
        # Audit samples are never grouped: each sampled event is its own review item.
        # Nor are approval items: each held event is its own release decision.
        group_subject = f"{f.subject}:{event.id}" if f.kind in (Kind.AUDIT_SAMPLE, Kind.APPROVAL) else f.subject
        return build_record(
            fit_fields(
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
                    impact=f.impact,
                    event=raw,
                    event_ref=ref,
                    detected_at=detected_at,
                    trimmed=trimmed or None,
                    deadline=f.deadline,
                )
            )
        )

    def _schema_violation(
        self, source: str, rejected: EventRejected, ref: EventRef, detected_at: datetime
    ) -> ExceptionRecord:
        return build_record(
            fit_fields(
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
                    event_ref=ref,
                    detected_at=detected_at,
                )
            )
        )
