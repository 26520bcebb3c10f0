"""Anomaly baselines live in faust tables backed by changelog topics: they survive a restart."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.settings import Settings
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from tests.fixtures.kafka import produce

pytestmark = pytest.mark.kafka


def bid(event_id: str, value: float, previous: float) -> tuple[bytes, bytes]:
    doc: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "bidder/test",
        "type": "bid.adjusted",
        "time": "2026-11-24T09:15:02Z",
        "subject": "cmp-state",
        "data": {
            "campaign_id": "cmp-state",
            "line_item_id": "li-state",
            "client_id": "northwind",
            "platform": "ttd",
            "bid_cpm": value,
            "previous_bid_cpm": previous,
            "max_bid_cpm": 50.0,
            "currency": "EUR",
            "strategy": "target_cpa",
            "model_confidence": 0.95,
        },
    }
    return b"cmp-state", orjson.dumps(doc)


def processed(settings: Settings, detector: ServiceProcess) -> bool:
    assert detector.alive(), detector.log()[-3000:]
    lag = asyncio.run(
        consumer_group_lag(settings.kafka_bootstrap, settings.group(settings.detector_app_id), [settings.bids_topic])
    )
    return lag == 0


def anomalies(settings: Settings) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(settings.kafka_bootstrap, settings.exceptions_topic))
    return [r for r in (orjson.loads(m.value) for m in records) if r["rule_id"] == "bid_anomaly"]


def test_baselines_are_recovered_after_a_restart(kafka_settings: Settings, tmp_path: Path) -> None:
    settings = kafka_settings.model_copy(update={"detector_metrics_port": free_port()})
    rng = random.Random(5)
    history = [round(rng.gauss(5.0, 0.1), 3) for _ in range(40)]
    warmup = [bid(f"warm-{i}", v, v) for i, v in enumerate(history)]

    detector = ServiceProcess.for_service("detector", settings, tmp_path).start()
    asyncio.run(produce(settings.kafka_bootstrap, settings.bids_topic, warmup))
    wait_until(lambda: processed(settings, detector), timeout=90, what="the warm-up to be processed", interval=0.5)
    assert detector.stop() == 0
    assert anomalies(settings) == []

    # A new process: an empty in-memory store, rebuilt from the changelog before it consumes.
    settings = settings.model_copy(update={"detector_metrics_port": free_port()})
    detector = ServiceProcess.for_service("detector", settings, tmp_path).start()
    after = [bid(f"after-{i}", v, v) for i, v in enumerate(round(rng.gauss(5.0, 0.1), 3) for _ in range(5))]
    spike = bid("spike", 8.0, 7.9)  # about 30 standard deviations above 5.0; no jump, under the cap
    asyncio.run(produce(settings.kafka_bootstrap, settings.bids_topic, [*after, spike, *after[:2]]))
    try:
        wait_until(lambda: processed(settings, detector), timeout=90, what="the events after the restart", interval=0.5)
    finally:
        detector.stop()

    [anomaly] = anomalies(settings)
    assert anomaly["event"]["id"] == "spike"
    assert anomaly["subject"] == "li-state"
    assert anomaly["score"] > 6
    assert anomaly["expected"]["observations"] >= 45
    assert abs(anomaly["expected"]["mean"] - 5.0) < 0.1
