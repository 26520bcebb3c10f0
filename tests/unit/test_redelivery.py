"""A redelivered message (the worker died after its baseline was stored, before its offset was
committed) gives exactly the records it gave the first time and leaves the baselines as they were."""

from __future__ import annotations

import copy
from typing import Any

from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector
from loopgate_tools.simulator.generator import SimEvent, generate


def run(
    detector: Detector, events: list[tuple[int, SimEvent]], bids: dict[str, Any], delivery: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Records per event id, without detected_at (the one field that is the time of processing)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for offset, ev in events:
        outcome = detector.process(
            ev.topic,
            ev.value,
            topic=ev.topic,
            partition=0,
            offset=offset,
            bid_baselines=bids,
            delivery_baselines=delivery,
        )
        out[ev.event_id] = [r.model_dump(mode="json", exclude={"detected_at"}) for r in outcome.records]
    return out


def test_replaying_the_uncommitted_tail_repeats_every_record_and_keeps_the_baselines() -> None:
    detector = Detector(load_detection_config())
    events = list(enumerate(generate(4000, anomaly_share=0.08, seed=21)))
    bids: dict[str, Any] = {}
    delivery: dict[str, Any] = {}
    first = run(detector, events, bids, delivery)
    anomalies = sum(1 for recs in first.values() for r in recs if r["rule_id"].endswith("_anomaly"))
    assert anomalies >= 20
    stored = (copy.deepcopy(bids), copy.deepcopy(delivery))

    tail = events[-1500:]  # processed (baselines stored) but, after a crash, delivered again
    again = run(detector, tail, bids, delivery)

    assert again == {ev.event_id: first[ev.event_id] for _, ev in tail}
    assert (bids, delivery) == stored
