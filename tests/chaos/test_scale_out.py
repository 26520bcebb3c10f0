"""Scale-out: detector workers in one consumer group share the partitions. Two start, a third joins
(a rebalance) and one is SIGKILLed mid-stream: the exceptions and the anomaly baselines must be
exactly those of a single worker on the same stream."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.processes import SERVICE_COMMANDS, ServiceProcess, free_port, settings_env, wait_until
from loopgate.common.settings import Settings
from loopgate.detector.app import BID_BASELINES, DELIVERY_BASELINES
from tests.chaos import report
from tests.chaos.harness import (
    PUBLISH_SECONDS,
    SESSION_TIMEOUT_SECONDS,
    Publisher,
    ground_truth,
    scrape,
    total,
)

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]


def worker(settings: Settings, workdir: Path, n: int) -> tuple[ServiceProcess, int]:
    """A detector worker process, and its metrics port."""
    port = free_port()
    own = settings.model_copy(update={
        "detector_metrics_port": port, "detector_data_dir": workdir / f"detector-{n}",
        "detector_session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
    })
    process = ServiceProcess(f"detector-{n}", SERVICE_COMMANDS["detector"], settings_env(own),
                             workdir / f"detector-{n}.log")
    return process.start(), port


def consumed(port: int) -> float:
    """Messages a worker has read (0 before its metrics endpoint is up)."""
    try:
        return total(scrape(port), "loopgate_events_consumed_total")
    except httpx.HTTPError:
        return 0.0


def baselines(settings: Settings, table: str) -> dict[str, list[float]]:
    """A table's final value per key, from its changelog (the last write of each key wins)."""
    topic = f"{settings.group(settings.detector_app_id)}-{table}-changelog"
    latest: dict[str, Any] = {}
    for message in asyncio.run(read_topic(settings.kafka_bootstrap, topic)):
        latest[orjson.loads(message.key)] = orjson.loads(message.value)
    return latest


def test_workers_joining_and_dying_give_the_exceptions_and_baselines_of_one(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    truth = ground_truth()
    upstream = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]
    started = [worker(settings, tmp_path, n) for n in (1, 2)]
    workers = [w for w, _ in started]
    try:
        publisher = Publisher(settings, truth.events, 1.5 * PUBLISH_SECONDS).start()
        publisher.wait_share(0.3)
        third, third_port = worker(settings, tmp_path, 3)  # joins: the group rebalances
        workers.append(third)
        wait_until(lambda: consumed(third_port) > 0, timeout=120, what="the third worker to take partitions",
                   interval=0.2)
        publisher.wait_share(0.65)
        before_kill = consumed(started[0][1])
        workers[0].kill()  # dies holding partitions, uncommitted work and baselines in flight
        killed_at = time.monotonic()
        publisher.join()
        since = time.monotonic()

        def caught_up() -> bool:
            for w in workers[1:]:
                assert w.alive(), w.log()[-3000:]
            group = settings.group(settings.detector_app_id)
            return asyncio.run(consumer_group_lag(settings.kafka_bootstrap, group, upstream)) == 0

        wait_until(caught_up, timeout=300, what="the remaining workers to process everything", interval=0.5)
        settle = time.monotonic() - since
        took_over = time.monotonic() - killed_at
        after = [consumed(port) for _, port in started[1:]] + [consumed(third_port)]
        logs = [w.log() for w in workers]
    finally:
        for w in workers:
            w.stop()

    ids = [orjson.loads(m.value)["exception_id"]
           for m in asyncio.run(read_topic(settings.kafka_bootstrap, settings.exceptions_topic))]
    found = set(ids)
    row = report.record(report.Row(
        scenario="3 detector workers: 2, +1 joins, 1 SIGKILLed", published=len(truth.events),
        expected=len(truth.ids), found=len(found & truth.ids), lost=len(truth.ids - found), duplicated=None,
        unexpected=len(found - truth.ids), topic_records=len(ids), settle_seconds=settle,
    ))
    assert found == truth.ids, row
    # Every worker did part of the work; the killed one's partitions waited for its session to expire.
    assert before_kill > 0 and all(n > 0 for n in after), (before_kill, after)
    assert took_over >= SESSION_TIMEOUT_SECONDS, took_over
    assert all("Traceback" not in log for log in logs)
    # The baselines (count, mean, variance) per line item and placement, exactly as one worker's.
    bids = baselines(settings, BID_BASELINES)
    delivery = baselines(settings, DELIVERY_BASELINES)
    assert {k: v[1:4] for k, v in bids.items()} == {k: v[1:4] for k, v in truth.bid_baselines.items()}
    assert {k: v[1:7] for k, v in delivery.items()} == {
        k: v[1:7] for k, v in truth.delivery_baselines.items()
    }
