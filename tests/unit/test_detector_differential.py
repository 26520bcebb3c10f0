"""The detector's batch path (`Detector.process_batch`) against the per-message reference
(`Detector.process`), issue 13. Over 100,000 simulated events, with the simulator's anomalies,
redeliveries, bad input, events keyed to another partition and garbage restored into the tables,
both give byte-identical exception records per message, the same dead letters (kind and reason)
and, at the end, the same baselines (as changelog bytes).

The reference goes message by message on tables that keep only what recovery reads back (each
value its changelog JSON, parsed). The batch path gets the same stream cut into batches of seeded
random sizes, on plain dicts holding whatever it stores. A crash (the worker died after its
changelog writes, before its offset commit) replays the uncommitted tail of a partition to a new
batch path on tables recovered from the changelog; a rewind without a restart (the tables kept in
memory) replays a tail too, often inside one batch with the messages it repeats.
"""

from __future__ import annotations

import copy
import math
import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loopgate.common.settings import Settings
from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector, Outcome, encode_baseline, read_stored, record_json
from loopgate_schemas import topics
from loopgate_tools.simulator.generator import (
    BID_ADJUSTED,
    BUDGET_PACING,
    CONTENT_GENERATED,
    DELIVERY_REPORT,
    SimEvent,
    generate,
)
from loopgate_tools.simulator.malformed import malformed
from tests.fixtures.tables import ChangelogTable
from tests.unit.review_policies import with_review_policies

CONFIG = with_review_policies(load_detection_config())  # approval items and exceptions_only clients too
MAX_EVENT_BYTES: int = Settings.model_fields["max_event_bytes"].default  # the worker's default limit
NOW = datetime(2026, 11, 24, 9, 16, 41, 123456, tzinfo=UTC)
EVENTS = 100_000
PARTITIONS = 6
PREFIX = "dev."  # actual topic names differ from the contract's, as with a topic prefix
MAX_BATCH = 5000
MAX_REPLAY = 3000  # longest uncommitted tail a rewind replays


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed message: the fields of aiokafka's ConsumerRecord the detector reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


Item = tuple[str, Message]  # (contract source name, message)


def partition_of(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS  # any stable hash will do (Kafka's is murmur2)


# --- bad input ---------------------------------------------------------------------------------


def _with(event: SimEvent, tag: str, **data: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(event.value)
    doc["id"] = f"{doc['id']}-{tag}"
    doc["data"].update(data)
    return doc


def _raw(doc: dict[str, Any], **literals: str) -> bytes:
    """`doc` as JSON with data fields written as raw literals orjson will not write (1e309, 2**70, NaN)."""
    doc = copy.deepcopy(doc)
    doc["data"].update({name: f"@{name}@" for name in literals})
    value = orjson.dumps(doc)
    for name, literal in literals.items():
        value = value.replace(f'"@{name}@"'.encode(), literal.encode())
    return value


def _of_size(doc: dict[str, Any], size: int) -> bytes:
    """`doc` padded by an ignored data field to exactly `size` bytes."""
    padded = copy.deepcopy(doc)
    padded["data"]["padding"] = ""
    padded["data"]["padding"] = "x" * (size - len(orjson.dumps(padded)))
    value = orjson.dumps(padded)
    assert len(value) == size
    return value


def bad_input(events: list[SimEvent], seed: int) -> list[tuple[str, bytes | None]]:
    """Messages a clean stream never holds, as (source, value): most are dead letters; a few are valid
    events that only the slow JSON reader can read back for the record, or that are as large as allowed."""
    clean = {e.event_type: e for e in reversed(events) if not e.expected_rules}
    firing = {e.event_type: e for e in reversed(events) if e.expected_rules}
    bid, delivery, content = clean[BID_ADJUSTED], clean[DELIVERY_REPORT], clean[CONTENT_GENERATED]
    pacing = clean[BUDGET_PACING]
    unsafe = _with(content, "unsafe", brand_safety_score=0.1)  # a content event that fires brand_safety
    cases: list[tuple[str, bytes | None]] = [
        (topics.BIDS, b"<html><body>502 Bad Gateway</body></html>"),
        (topics.BIDS, bid.value[: len(bid.value) // 2]),
        (topics.TRAFFICKING, b""),
        (topics.TRAFFICKING, None),  # a tombstone
        (topics.CONTENT, b'{"a":' * 5000 + b"1" + b"}" * 5000),
        (topics.BIDS, b"null"),
        (topics.BIDS, b"[]"),
        (topics.BIDS, b'{"x": 1}'),
        (topics.CONTENT, bid.value),  # an event of another topic
        (topics.BIDS, bid.value.replace(b'"data"', b'"\xff\xfedata"', 1)),  # invalid UTF-8
        (topics.BIDS, _raw(_with(bid, "inf"), bid_cpm="1e309")),
        (topics.BIDS, _raw(_with(bid, "nan"), bid_cpm="NaN")),
        (topics.BIDS, orjson.dumps(_with(bid, "negative", bid_cpm=-0.01))),
        (topics.BIDS, orjson.dumps(_with(bid, "string", bid_cpm="4.20"))),
        (topics.BIDS, orjson.dumps(_with(pacing, "negative", spend_to_date=-5.0))),
        (topics.BIDS, _raw(_with(pacing, "inf"), daily_budget="-1e309")),
        (topics.TRAFFICKING, _raw(_with(delivery, "u64"), impressions=str(2**64))),
        (topics.TRAFFICKING, orjson.dumps(_with(delivery, "bound", impressions=2**53))),
        (topics.TRAFFICKING, orjson.dumps(_with(delivery, "negative", clicks=-1))),
        (topics.TRAFFICKING, orjson.dumps(_with(delivery, "float", impressions=1000.5))),
        (topics.CONTENT, orjson.dumps(_with(content, "confident", model_confidence=1.5))),
        (topics.CONTENT, _of_size(unsafe, MAX_EVENT_BYTES + 1)),
        # Valid: as large as allowed, and numbers in ignored fields that orjson refuses to read.
        (topics.CONTENT, _of_size(unsafe, MAX_EVENT_BYTES)),
        (topics.BIDS, _raw(_with(firing[BID_ADJUSTED], "huge-extra"), note="1e309", big=str(2**70))),
        (topics.TRAFFICKING, _raw(_with(firing[DELIVERY_REPORT], "nan-extra"), note="NaN")),
        (topics.CONTENT, _raw(unsafe, note="-Infinity")),
    ]
    cases += [(m.topic, m.value) for m in malformed(44, seed=seed)]
    return cases


# --- garbage restored from a changelog ---------------------------------------------------------

UNREADABLE: list[Any] = [
    [None],
    ["x"],
    [math.inf],  # [1e400] as the standard JSON reader gives it
    [0, 3, math.nan, 0.1, 0, 0, 0.0],
    [0, 2**70, 5.0, 0.1],
    [0, -3, 5.0, 0.1],
    [0, True, 5.0, 0.1],
    [0, 3, 5.0, 0.1, 0, 1],  # neither [.., partition] nor [.., partition, run, run_mean]
    [0, 3, 5.0, 0.1, 0, 1, 0.0, 3, 0.01, 4],  # [.., partition, run, run_mean, 3, trend, 3] with a wrong tag
    [],
    "x",
    {"a": 1},
]
NEVER_SEEN = "entity-never-seen"  # its garbage stays in the table: nothing of the stream touches it


def restored_tables(events: list[SimEvent]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bid and delivery tables as an old changelog left them: garbage, readable values of older layouts
    (before the partition, before the runs, before the trends) and a value from far in the future (a reset topic), on
    entities of the stream."""
    line_items: dict[str, int] = {}
    placements: dict[str, int] = {}
    for e in events:
        if e.event_type == BID_ADJUSTED:
            line_items.setdefault(orjson.loads(e.value)["data"]["line_item_id"], partition_of(e.key))
        elif e.event_type == DELIVERY_REPORT:
            placements.setdefault(e.subject, partition_of(e.key))
    bid_values: list[Any] = [
        *UNREADABLE,
        [41, 30, 5.0, 0.01],
        [41, 30, 5.0, 0.01, 3, 12, 20, 5.0, 0.01],
        [41, 30, 5.0, 0.01, 3, 2, 6.0, 12, 20, 5.0, 0.01],  # runs, no trend
        [41, 30, 5.0, 0.01, 3, 0, 0.0, 3, 0.01, 3],  # runs and a trend
    ]
    delivery_values: list[Any] = [
        *UNREADABLE,
        [41, 30, 30000.0, 9e5, 30, 0.005, 1e-6],
        [41, 30, 30000.0, 9e5, 30, 0.005, 1e-6, 2, 1, 33000.0, 0, 0.0],  # runs, no trend
    ]
    bids = dict(zip(sorted(line_items), bid_values, strict=False))
    delivery = dict(zip(sorted(placements), delivery_values, strict=False))
    far_bid, far_placement = sorted(line_items)[len(bid_values)], sorted(placements)[len(delivery_values)]
    bids[far_bid] = [10**9, 30, 5.0, 0.01, line_items[far_bid], 0, 0.0]
    delivery[far_placement] = [10**9, 30, 30000.0, 9e5, 30, 0.005, 1e-6, placements[far_placement], 0, 0.0, 0, 0.0]
    bids[NEVER_SEEN] = ["x"]
    return bids, delivery


# --- the stream ---------------------------------------------------------------------------------


@dataclass
class Stream:
    """The messages in the order they are consumed, with what was done to them."""

    items: list[Item] = field(default_factory=list)
    restarts: set[int] = field(default_factory=set)  # positions where a new worker takes over (after a crash)
    replayed: set[int] = field(default_factory=set)  # positions of redelivered messages
    misrouted: int = 0
    bad: int = 0
    bid_tables: dict[str, Any] = field(default_factory=dict)
    delivery_tables: dict[str, Any] = field(default_factory=dict)
    _next_offset: Counter[tuple[str, int]] = field(default_factory=Counter)
    _log: dict[tuple[str, int], list[Item]] = field(default_factory=dict)

    def deliver(self, source: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        topic = PREFIX + source
        offset = self._next_offset[topic, partition]
        self._next_offset[topic, partition] += 1
        item = (source, Message(topic, partition, offset, key, value))
        self.items.append(item)
        self._log.setdefault((topic, partition), []).append(item)

    def replay_tail(self, rng: random.Random, *, restart: bool) -> None:
        """The tail of one partition again, same offsets and bytes: it was processed, never committed."""
        log = self._log[rng.choice(sorted(self._log))]
        tail = log[-rng.randint(1, min(len(log), MAX_REPLAY)) :]
        if restart:
            self.restarts.add(len(self.items))
        self.replayed.update(range(len(self.items), len(self.items) + len(tail)))
        self.items.extend(tail)


def build_stream(count: int, *, seed: int) -> Stream:
    """`count` simulated events spread over PARTITIONS partitions by key, with bad input at random
    positions, a few in a thousand keyed to another partition's entity, and tails replayed."""
    rng = random.Random(f"differential-{seed}")
    events = list(generate(count, anomaly_share=0.05, seed=seed))
    stream = Stream()
    stream.bid_tables, stream.delivery_tables = restored_tables(events)
    keys: dict[str, list[bytes]] = {}
    for e in events:
        keys.setdefault(e.topic, []).append(e.key)
    keys = {topic: sorted(set(ks)) for topic, ks in keys.items()}
    bad = bad_input(events, seed)
    bad_at = dict(zip(sorted(rng.sample(range(count), len(bad))), bad, strict=True))
    rewinds = sorted(rng.sample(range(count // 10, count), max(4, count // 6000)))
    rewind_at = {at: i % 2 == 0 for i, at in enumerate(rewinds)}  # every other rewind is a crash
    for i, ev in enumerate(events):
        if i in bad_at:
            source, value = bad_at[i]
            key = rng.choice(keys[source]) if rng.random() < 0.75 else None
            stream.deliver(source, key, value, partition_of(key) if key else rng.randrange(PARTITIONS))
            stream.bad += 1
        key = ev.key
        if rng.random() < 0.003:  # keyed to another entity, on that entity's partition
            key = rng.choice([k for k in keys[ev.topic] if partition_of(k) != partition_of(ev.key)])
            stream.misrouted += 1
        stream.deliver(ev.topic, key, ev.value, partition_of(key))
        if i in rewind_at:
            stream.replay_tail(rng, restart=rewind_at[i])
    return stream


# --- comparing the two paths -------------------------------------------------------------------


def recover(table: dict[str, Any], restored: dict[str, Any]) -> dict[str, Any]:
    """What a new worker reads from the changelog: every value written, as JSON; garbage never
    overwritten is still what the old changelog held."""
    return {k: v if v is restored.get(k) else orjson.loads(encode_baseline(v)) for k, v in table.items()}


def _signature(outcome: Outcome) -> tuple[list[bytes], tuple[str, str] | None, bool, int]:
    rejected = outcome.rejected
    dead_letter = (rejected.kind, rejected.reason) if rejected is not None else None
    return [record_json(r) for r in outcome.records], dead_letter, outcome.sampled, outcome.discarded_states


def _outcome_difference(reference: Outcome, fast: Outcome) -> str | None:
    names = ("records", "dead letter", "sampled", "discarded_states")
    for name, want, got in zip(names, _signature(reference), _signature(fast), strict=True):
        if want == got:
            continue
        if isinstance(want, list) and isinstance(got, list):
            if len(want) != len(got):
                rules = [r.rule_id for r in reference.records], [r.rule_id for r in fast.records]
                return f"records differ: reference {rules[0]}, batch path {rules[1]}"
            i = next(i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b)
            at = next(j for j, (a, b) in enumerate(zip(want[i], got[i], strict=False)) if a != b)
            around = slice(max(0, at - 60), at + 60)
            return (
                f"record {i} ({reference.records[i].rule_id}) differs from byte {at}: "
                f"reference ...{want[i][around]!r}..., batch path ...{got[i][around]!r}..."
            )
        return f"{name} differs: reference {want!r:.300}, batch path {got!r:.300}"
    return None


def first_difference(
    items: Sequence[Item], reference: Sequence[Outcome], fast: Sequence[Outcome], *, start: int = 0
) -> str | None:
    """Where the two paths' outcomes for `items` (at position `start` of the stream) first differ: the
    message's position, where it was read and what differs; None when they agree."""
    if len(fast) != len(reference):
        return f"the batch path gave {len(fast)} outcomes for the {len(items)} messages from position {start}"
    for i, (want, got) in enumerate(zip(reference, fast, strict=True)):
        what = _outcome_difference(want, got)
        if what is not None:
            message = items[i][1]
            return f"message {start + i} ({message.topic}[{message.partition}]@{message.offset}): {what}"
    return None


def _changelog_bytes(value: Any) -> bytes | str:
    try:
        return encode_baseline(value)
    except (TypeError, ValueError) as err:  # a value the batch path should have replaced
        return f"not encodable ({err}): {value!r:.200}"


def baseline_difference(name: str, reference: dict[str, Any], fast: dict[str, Any]) -> str | None:
    """The first entity whose baseline differs between the two paths' tables (as changelog bytes)."""
    if set(reference) != set(fast):
        only_reference, only_fast = sorted(set(reference) - set(fast)), sorted(set(fast) - set(reference))
        return f"{name}: entities only in the reference {only_reference[:5]}, only in the batch path {only_fast[:5]}"
    for key in sorted(reference):
        want, got = _changelog_bytes(reference[key]), _changelog_bytes(fast[key])
        if want != got:
            return f"{name}[{key!r}]: reference {want!r:.300}, batch path {got!r:.300}"
    return None


@dataclass
class Run:
    difference: str | None = None  # the first message where the paths diverge (the run stops there)
    baselines: str | None = None  # the first entity whose final baseline differs
    messages: int = 0
    batches: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    discarded: int = 0
    replayed_anomalies: int = 0  # anomaly records given again for a redelivered message
    replays_in_batch: int = 0  # redelivered messages in the same batch as their first delivery
    reference_tables: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))


def run_both(stream: Stream, *, seed: int, fast_now: datetime = NOW, fast_items: Sequence[Item] | None = None) -> Run:
    """The stream message by message through the reference, and batch by batch through the batch path
    (`fast_items`, when given, in place of the stream's messages), compared batch by batch."""
    fast_items = stream.items if fast_items is None else fast_items
    reference = Detector(CONFIG, max_event_bytes=MAX_EVENT_BYTES)
    ref_bids, ref_delivery = ChangelogTable(stream.bid_tables), ChangelogTable(stream.delivery_tables)
    fast_bids, fast_delivery = copy.deepcopy(stream.bid_tables), copy.deepcopy(stream.delivery_tables)
    restored = dict(fast_bids), dict(fast_delivery)
    fast = Detector(CONFIG, max_event_bytes=MAX_EVENT_BYTES)
    rng = random.Random(f"batches-{seed}")
    boundaries = [*sorted(stream.restarts), len(stream.items)]
    run, position = Run(reference_tables=(ref_bids, ref_delivery)), 0
    while position < len(stream.items):
        if position in stream.restarts:  # a new worker, on tables recovered from the changelog
            fast = Detector(CONFIG, max_event_bytes=MAX_EVENT_BYTES)
            fast_bids, fast_delivery = recover(fast_bids, restored[0]), recover(fast_delivery, restored[1])
        size = max(1, round(MAX_BATCH ** rng.random()))  # 1..MAX_BATCH, small batches as likely as large
        end = min(position + size, next(b for b in boundaries if b > position))
        batch = stream.items[position:end]
        want = [
            reference.process(
                source,
                m.value or b"",
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                key=m.key,
                bid_baselines=ref_bids,
                delivery_baselines=ref_delivery,
                now=NOW,
            )
            for source, m in batch
        ]
        got = fast.process_batch(
            fast_items[position:end], bid_baselines=fast_bids, delivery_baselines=fast_delivery, now=fast_now
        )
        run.difference = first_difference(batch, want, got, start=position)
        if run.difference is not None:
            return run
        seen: set[tuple[str, int, int]] = set()
        for i, (outcome, (_, m)) in enumerate(zip(want, batch, strict=True), start=position):
            run.rules.update(r.rule_id for r in outcome.records)
            run.discarded += outcome.discarded_states
            if outcome.rejected is not None:
                run.dead_letters[outcome.rejected.kind] += 1
            if i in stream.replayed:
                run.replayed_anomalies += sum(r.rule_id.endswith("_anomaly") for r in outcome.records)
                run.replays_in_batch += (m.topic, m.partition, m.offset) in seen
            seen.add((m.topic, m.partition, m.offset))
        run.messages += len(batch)
        run.batches += 1
        position = end
    run.baselines = baseline_difference("bid baselines", ref_bids, fast_bids) or baseline_difference(
        "delivery baselines", ref_delivery, fast_delivery
    )
    return run


# --- the tests ----------------------------------------------------------------------------------


def test_the_batch_path_gives_the_references_records_dead_letters_and_baselines() -> None:
    stream = build_stream(EVENTS, seed=13)
    run = run_both(stream, seed=13)

    assert run.difference is None, run.difference
    assert run.baselines is None, run.baselines
    # What the stream held, so a change to the simulator cannot thin the comparison unnoticed.
    assert run.messages == len(stream.items) >= EVENTS + stream.bad + len(stream.replayed)
    assert run.rules["bid_anomaly"] >= 100 and run.rules["delivery_anomaly"] >= 100
    assert set(run.rules) == set(CONFIG.severity)  # every rule, audit samples and schema violations too
    assert set(run.dead_letters) == {
        "empty",
        "too_large",
        "invalid_json",
        "unknown_type",
        "missing_field",
        "wrong_type",
        "invalid_value",
    }
    assert len(stream.replayed) >= 5000 and len(stream.restarts) >= 8
    assert run.replayed_anomalies > 0 and run.replays_in_batch > 0
    assert stream.misrouted >= 200 and run.batches >= 100
    assert run.discarded >= 2 * len(UNREADABLE)  # each unreadable value met, and replaced
    bids, delivery = run.reference_tables
    unreadable = [k for k, v in bids.items() if k != NEVER_SEEN and read_stored(v, 1) is None]
    unreadable += [k for k, v in delivery.items() if read_stored(v, 2) is None]
    assert unreadable == []


def _first_with_records(stream: Stream) -> int:
    detector = Detector(CONFIG, max_event_bytes=MAX_EVENT_BYTES)
    bids, delivery = copy.deepcopy(stream.bid_tables), copy.deepcopy(stream.delivery_tables)
    for i, (source, m) in enumerate(stream.items):
        kwargs: dict[str, Any] = dict(topic=m.topic, partition=m.partition, offset=m.offset, now=NOW)
        if detector.process(source, m.value or b"", bid_baselines=bids, delivery_baselines=delivery, **kwargs).records:
            return i
    raise AssertionError("no message gave a record")


def test_a_batch_path_on_another_clock_is_caught_at_the_first_record() -> None:
    stream = build_stream(3000, seed=5)
    run = run_both(stream, seed=5, fast_now=NOW + timedelta(microseconds=1))

    position = _first_with_records(stream)
    assert run.difference is not None and run.difference.startswith(f"message {position} (")
    assert "differs from byte" in run.difference
    assert "41.123456Z" in run.difference and "41.123457Z" in run.difference  # detected_at, both paths


def test_a_flipped_byte_is_caught_at_its_message() -> None:
    stream = build_stream(3000, seed=5)
    position = next(i for i, (_, m) in enumerate(stream.items) if i >= 1000 and (m.value or b"").startswith(b"{"))
    source, message = stream.items[position]
    assert message.value is not None
    flipped = bytes([message.value[0] ^ 0x01]) + message.value[1:]  # `{` becomes `z`: not JSON
    fast_items = list(stream.items)
    fast_items[position] = (source, replace(message, value=flipped))

    run = run_both(stream, seed=5, fast_items=fast_items)

    assert run.difference is not None and run.difference.startswith(f"message {position} (")
