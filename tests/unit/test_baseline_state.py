"""What the baseline tables hold, read back: garbage restored from an old changelog is discarded
and counted (never raised per event), offsets are compared within a partition only, and values
written before the partition or the anomaly runs were kept still read."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from loopgate.detector.anomaly import Baseline
from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector, encode_baseline, read_stored
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES
from tests.fixtures.tables import ChangelogTable

DETECTOR = Detector(load_detection_config())


def bid(event_id: str, value: float, line_item: str = "li-1") -> bytes:
    doc = json.loads((CONTRACT_EXAMPLES / "bid-adjusted.json").read_text())
    doc["id"] = event_id
    doc["data"].update(line_item_id=line_item, bid_cpm=value, previous_bid_cpm=value, max_bid_cpm=1e300)
    return json.dumps(doc).encode()


def delivery(event_id: str, impressions: int, placement: str = "plc-1") -> bytes:
    doc = json.loads((CONTRACT_EXAMPLES / "delivery-report.json").read_text())
    doc["id"] = event_id
    doc["data"].update(
        placement_id=placement,
        impressions=impressions,
        clicks=impressions // 100,
        booked_impressions_per_hour=impressions,
    )
    return json.dumps(doc).encode()


def rules(source: str, value: bytes, table: dict[str, Any], *, partition: int = 0, offset: int) -> list[str]:
    kwargs = {"bid_baselines": table} if source == topics.BIDS else {"delivery_baselines": table}
    outcome = DETECTOR.process(source, value, topic=source, partition=partition, offset=offset, **kwargs)
    assert outcome.rejected is None
    return sorted(r.rule_id for r in outcome.records if r.rule_id != "audit_sample")


GARBAGE = [
    "x",
    [],
    [1],
    {"a": 1},
    [0, 3, None, 0.1],
    [0, 3, 5.0, None, 0],
    [0, 3, math.nan, 0.1],
    [0, 3, 5.0, math.inf],
    [0, 3, 5.0, -1.0],
    [0, 3, "5", 0.1],
    [0, True, 5.0, 0.1],
    [0, 3, 5.0, 0.1, 0, 1],  # neither [.., partition] nor [.., partition, run, run_mean]
    [0, 3, 5.0, 0.1, 0, 1, math.nan],
    [0, 2**70, 5.0, 0.1],
    [0, -3, 5.0, 0.1],
    [0, 3, 5.0, 0.1, 0, 1, 0.0, 3, 0.01, 4],  # the trend layout's length, a wrong closing tag
    [0, 3, 5.0, 0.1, 0, 1, 0.0, 2, 0.01, 3],  # ... a wrong opening tag
    [0, 3, 5.0, 0.1, 0, 1, 0.0, 3, math.inf, 3],  # ... a non-finite trend
    [0, 3, 5.0, 0.1, 0, 1],  # remainder 2 but too short for the trend layout
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_an_unreadable_bid_baseline_is_discarded_counted_and_replaced(garbage: Any) -> None:
    table = ChangelogTable({"li-1": garbage})
    outcome = DETECTOR.process(
        topics.BIDS, bid("e1", 5.0), topic=topics.BIDS, partition=0, offset=9, bid_baselines=table
    )
    assert outcome.rejected is None and outcome.discarded_states == 1
    assert table["li-1"][:5] == [9, 1, 5.0, 0.0, 0]  # a fresh baseline from this event, on partition 0


@pytest.mark.parametrize("garbage", ["x", [0, 3, 5.0, 0.1, 3, math.nan, 0.1], [1, 2, 3]], ids=repr)
def test_an_unreadable_delivery_baseline_is_discarded_and_counted(garbage: Any) -> None:
    table = ChangelogTable({"plc-1": garbage})
    outcome = DETECTOR.process(
        topics.TRAFFICKING,
        delivery("d1", 1000),
        topic=topics.TRAFFICKING,
        partition=2,
        offset=4,
        delivery_baselines=table,
    )
    assert outcome.rejected is None and outcome.discarded_states == 1
    assert table["plc-1"][0] == 4 and table["plc-1"][7] == 2


def test_a_value_written_before_the_partition_was_kept_still_reads() -> None:
    old = [41, 30, 5.0, 0.01, 12, 20, 5.0, 0.01]  # [last_offset, count, mean, var, fired offset + baseline]
    stored = read_stored(old, 1)
    assert stored is not None and (stored.partition, stored.last_offset, stored.fired) == (None, 41, old[4:])
    assert rules(topics.BIDS, bid("again", 5.0), {"li-1": old}, offset=12) == []  # a redelivery: unchanged
    table = ChangelogTable({"li-1": list(old)})
    rules(topics.BIDS, bid("new", 5.0), table, offset=42)
    assert table["li-1"][:5] == [42, 31, 5.0, table["li-1"][3], 0]


def test_an_event_keyed_to_another_partition_does_not_blind_the_entity() -> None:
    table = ChangelogTable()
    for offset in range(30):
        rules(topics.BIDS, bid(f"w{offset}", 5.0 + 0.01 * (offset % 3)), table, partition=1, offset=offset)
    # A wrongly keyed event of the same line item lands on partition 4, far ahead in offsets.
    rules(topics.BIDS, bid("wrong-key", 5.0), table, partition=4, offset=100_000)
    count = table["li-1"][1]
    assert rules(topics.BIDS, bid("spike", 50.0), table, partition=1, offset=30) == ["bid_anomaly"]
    assert table["li-1"][1] == count + 1  # applied, not taken for a redelivery


def test_a_redelivery_on_the_same_partition_is_still_recognised() -> None:
    table = ChangelogTable()
    for offset in range(30):
        rules(topics.BIDS, bid(f"w{offset}", 5.0 + 0.01 * (offset % 3)), table, partition=1, offset=offset)
    first = rules(topics.BIDS, bid("spike", 50.0), table, partition=1, offset=30)
    stored = list(table["li-1"])
    assert rules(topics.BIDS, bid("spike", 50.0), table, partition=1, offset=30) == first == ["bid_anomaly"]
    assert table["li-1"] == stored


def test_a_bid_of_1e160_during_warm_up_keeps_the_line_item_watched() -> None:
    table = ChangelogTable()
    rules(topics.BIDS, bid("huge", 1e160), table, offset=0)
    for offset in range(1, 40):
        rules(topics.BIDS, bid(f"w{offset}", 5.0 + 0.01 * (offset % 3)), table, offset=offset)
    assert all(math.isfinite(x) for x in table["li-1"])
    assert rules(topics.BIDS, bid("ordinary", 5.01), table, offset=40) == []
    assert rules(topics.BIDS, bid("spike", 50.0), table, offset=41) == ["bid_anomaly"]


def test_a_value_written_before_the_runs_were_kept_still_reads() -> None:
    old = [41, 30, 5.0, 0.01, 3, 12, 20, 5.0, 0.01]  # [last_offset, count, mean, var, partition, fired...]
    stored = read_stored(old, 1)
    assert stored is not None and (stored.partition, stored.fired) == (3, old[5:])
    assert (stored.states[0].run, stored.states[0].run_mean) == (0, 0.0)
    table = ChangelogTable({"li-1": list(old)})
    rules(topics.BIDS, bid("new", 5.0), table, partition=3, offset=42)
    assert table["li-1"][:7] == [42, 31, 5.0, table["li-1"][3], 3, 0, 0.0]
    assert table["li-1"][7:10] == [3, 0.0, 3]  # the trend, between its tags: 0 after a value on the mean
    assert table["li-1"][10:] == old[5:]


def test_a_value_written_before_the_trends_were_kept_reads_with_no_trend_and_judges_as_before() -> None:
    # [last_offset, count, mean, var, partition, run, run_mean, fired offset + (count, mean, var)]
    old = [41, 30, 5.0, 0.01, 3, 2, 6.0, 12, 20, 5.0, 0.01]
    stored = read_stored(old, 1)
    assert stored is not None and (stored.partition, stored.last_offset, stored.fired) == (3, 41, old[7:])
    assert stored.states[0] == Baseline(30, 5.0, 0.01, 2, 6.0, 0.0)
    assert rules(topics.BIDS, bid("again", 5.0), {"li-1": list(old)}, partition=3, offset=12) == []
    table = ChangelogTable({"li-1": list(old)})
    assert rules(topics.BIDS, bid("spike", 5.6), table, partition=3, offset=42) == ["bid_anomaly"]  # 6 std out
    assert table["li-1"] == [
        42,
        31,
        5.0,
        0.01,
        3,
        3,
        6.0 + (5.6 - 6.0) / 3,
        3,
        0.0,
        3,
        12,
        20,
        5.0,
        0.01,
        42,
        30,
        5.0,
        0.01,
    ]
    delivery_old = [41, 30, 30000.0, 9e5, 30, 0.005, 1e-6, 2, 1, 33000.0, 0, 0.0]
    restored = read_stored(delivery_old, 2)
    assert restored is not None and [b.trend for b in restored.states] == [0.0, 0.0]
    assert [b.run for b in restored.states] == [1, 0] and restored.fired == []


def test_a_value_with_trends_reads_back_as_written() -> None:
    table = ChangelogTable()
    for offset in range(60):  # a steady climb of 0.01 an event, after the warm-up
        rules(topics.BIDS, bid(f"c{offset}", 5.0 + 0.01 * max(0, offset - 20)), table, offset=offset)
    written = table["li-1"]
    stored = read_stored(written, 1)
    assert stored is not None and stored.states[0].trend > 0.0
    assert written[7] == written[9] == 3 and written[8] == stored.states[0].trend
    assert orjson.loads(encode_baseline(stored)) == written
    delivery_table = ChangelogTable()
    for offset in range(30):
        rules(
            topics.TRAFFICKING, delivery(f"d{offset}", 1000 + 10 * offset), delivery_table, partition=2, offset=offset
        )
    two = read_stored(delivery_table["plc-1"], 2)
    assert two is not None and two.partition == 2 and two.last_offset == 29
    assert orjson.loads(encode_baseline(two)) == delivery_table["plc-1"]
    assert delivery_table["plc-1"][12] == delivery_table["plc-1"][15] == 3


def test_clustered_outliers_all_fire_through_the_table_and_a_redelivery_fires_the_same() -> None:
    table = ChangelogTable()
    for offset in range(40):
        rules(topics.BIDS, bid(f"w{offset}", 5.0 + 0.05 * (offset % 5 - 2)), table, offset=offset)
    spikes = {40: 5.8, 43: 4.3, 47: 6.1}  # 8, 7 and 11 deviations (std floored at 0.1) within 10 events
    for offset in range(40, 50):
        value = spikes.get(offset, 5.0 + 0.05 * (offset % 5 - 2))
        expected = ["bid_anomaly"] if offset in spikes else []
        assert rules(topics.BIDS, bid(f"e{offset}", value), table, offset=offset) == expected
    stored = list(table["li-1"])
    assert read_stored(stored, 1) is not None
    assert rules(topics.BIDS, bid("e43", 4.3), table, offset=43) == ["bid_anomaly"]  # redelivered
    assert table["li-1"] == stored
