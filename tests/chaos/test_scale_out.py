"""Scale-out: detector workers in one consumer group share the partitions. Two start, a third joins
(a rebalance) and one is SIGKILLed mid-stream: the exceptions and the anomaly baselines must be
exactly those of a single worker on the same stream."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from loopgate.common.kafka import partition_lags, read_topic
from loopgate.common.settings import Settings
from loopgate.detector.app import BID_BASELINES, DELIVERY_BASELINES
from loopgate_tools.processes import LOOPGATE, ServiceProcess, free_port, settings_env, wait_until
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
    own = settings.model_copy(
        update={
            "detector_metrics_port": port,
            "detector_data_dir": workdir / f"detector-{n}",
            "detector_session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
        }
    )
    # Info-level logs: a failure here is about rebalances, which faust logs at info.
    process = ServiceProcess(
        f"detector-{n}",
        [*LOOPGATE, "detector", "--log-level", "info"],
        settings_env(own),
        workdir / f"detector-{n}.log",
    )
    return process.start(), port


def consumed(port: int) -> float:
    """Messages a worker has read (0 before its metrics endpoint is up)."""
    return _metric(port, "loopgate_events_consumed_total")


def owned(port: int) -> float:
    """Upstream partitions a worker owns since the group's last rebalance."""
    return _metric(port, "loopgate_detector_assigned_partitions")


def _metric(port: int, name: str) -> float:
    try:
        return total(scrape(port), name)
    except httpx.HTTPError:
        return 0.0


def baselines(settings: Settings, table: str) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """A table's final value per key, from its changelog (the last write of each key wins), and
    every write of each key: (partition, offset, timestamp ms, event offset, count), for the
    failure message."""
    topic = f"{settings.group(settings.detector_app_id)}-{table}-changelog"
    latest: dict[str, Any] = {}
    writes: dict[str, list[Any]] = {}
    for message in asyncio.run(read_topic(settings, topic)):
        key, value = orjson.loads(message.key), orjson.loads(message.value)
        latest[key] = value
        writes.setdefault(key, []).append((message.partition, message.offset, message.timestamp, value[0], value[1]))
    return latest, writes


def differing(
    found: dict[str, list[float]], truth: dict[str, list[float]], writes: dict[str, list[Any]], columns: slice
) -> dict[str, Any]:
    return {
        k: {"found": found.get(k, [])[columns], "truth": v[columns], "writes": writes.get(k)}
        for k, v in truth.items()
        if found.get(k, [])[columns] != v[columns]
    }


def test_workers_joining_and_dying_give_the_exceptions_and_baselines_of_one(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings
    truth = ground_truth()
    upstream = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]
    every_partition = len(upstream) * settings.upstream_partitions
    # The stream in four parts, each published once the one before is on the broker, so the
    # per-entity order (and so the baselines) is that of the single-worker reference. Each step
    # waits for the group to settle rather than guessing how long a rebalance takes.
    cuts = [len(truth.events) * share // 100 for share in (0, 30, 60, 85, 100)]
    parts = [truth.events[a:b] for a, b in itertools.pairwise(cuts)]

    def publish(part: int) -> Publisher:
        return Publisher(settings, parts[part], PUBLISH_SECONDS * len(parts[part]) / len(truth.events)).start()

    def wait_owning(ports: list[int], what: str) -> None:
        """Until these workers share every upstream partition, each owning some."""
        state: list[float] = []

        def shared() -> bool:
            state[:] = [owned(p) for p in ports]
            return all(n > 0 for n in state) and sum(state) == every_partition

        try:
            wait_until(shared, timeout=180, what=what, interval=0.2)
        except TimeoutError as err:
            raise AssertionError(f"{err}; partitions owned per worker: {state}") from None

    started = [worker(settings, tmp_path, n) for n in (1, 2)]
    workers = [w for w, _ in started]
    ports = [p for _, p in started]
    try:
        publish(0).join()
        wait_owning(ports, "both workers to own partitions")
        publisher = publish(1)
        third, third_port = worker(settings, tmp_path, 3)  # joins: the group rebalances
        workers.append(third)
        ports.append(third_port)
        wait_owning(ports, "the three workers to share the partitions")
        publisher.join()
        publisher = publish(2)
        publisher.wait_share(0.5)
        victim = next(i for i in (0, 1) if owned(ports[i]) > 0)
        wait_until(lambda: consumed(ports[victim]) > 0, timeout=120, what="the victim to read", interval=0.1)
        before_kill = consumed(ports[victim])
        workers[victim].kill()  # dies holding partitions, and (mid-stream) uncommitted work
        killed_at, killed_at_wall = time.monotonic(), time.time()
        survivors = [i for i in range(3) if i != victim]
        publisher.join()
        # The rest of the stream: some of it lands on the dead worker's partitions, which nobody
        # reads until the group notices the death (its session times out).
        publish(3).join()
        since = time.monotonic()
        lags: dict[Any, int] = {}

        def caught_up() -> bool:
            for i in survivors:
                assert workers[i].alive(), workers[i].log()[-3000:]
            group = settings.group(settings.detector_app_id)
            lags.update(asyncio.run(partition_lags(settings, group, upstream)))
            return sum(lags.values()) == 0

        try:
            wait_until(caught_up, timeout=300, what="the remaining workers to process everything", interval=0.5)
        except TimeoutError as err:
            behind = {f"{tp.topic}[{tp.partition}]": n for tp, n in lags.items() if n}
            state = {f"worker {i + 1}": (owned(ports[i]), consumed(ports[i])) for i in survivors}
            raise AssertionError(
                f"{err}; lag {behind}; (owned, consumed) {state}; logs:\n"
                + "\n".join(workers[i].log()[-4000:] for i in survivors)
            ) from None
        settle = time.monotonic() - since
        took_over = time.monotonic() - killed_at
        after = [consumed(ports[i]) for i in survivors]
        logs = [w.log() for w in workers]
    finally:
        for w in workers:
            w.stop()

    ids = [orjson.loads(m.value)["exception_id"] for m in asyncio.run(read_topic(settings, settings.exceptions_topic))]
    found = set(ids)
    row = report.record(
        report.Row(
            scenario="3 detector workers: 2, +1 joins, 1 SIGKILLed",
            published=len(truth.events),
            expected=len(truth.ids),
            found=len(found & truth.ids),
            lost=len(truth.ids - found),
            duplicated=None,
            unexpected=len(found - truth.ids),
            topic_records=len(ids),
            settle_seconds=settle,
        )
    )
    (tmp_path / "lost.json").write_bytes(orjson.dumps(sorted(truth.ids - found)))
    assert found == truth.ids, row
    # Every worker did part of the work; the killed one's partitions waited for its session to expire.
    assert before_kill > 0 and all(n > 0 for n in after), (before_kill, after)
    assert took_over >= SESSION_TIMEOUT_SECONDS, took_over
    assert all("Traceback" not in log for log in logs)
    # The baselines (count, mean, variance) per line item and placement, exactly as one worker's.
    bids, bid_writes = baselines(settings, BID_BASELINES)
    delivery, delivery_writes = baselines(settings, DELIVERY_BASELINES)
    assert bids.keys() == truth.bid_baselines.keys()
    assert delivery.keys() == truth.delivery_baselines.keys()
    drift = {
        "bids": differing(bids, truth.bid_baselines, bid_writes, slice(1, 4)),
        "delivery": differing(delivery, truth.delivery_baselines, delivery_writes, slice(1, 7)),
    }
    (tmp_path / "baseline-diff.json").write_bytes(orjson.dumps({"killed_at": killed_at_wall, **drift}))
    assert not drift["bids"] and not drift["delivery"], (
        f"baselines differ from a single worker's: {list(drift['bids'])} {list(drift['delivery'])}; "
        f"every changelog write of those keys is in {tmp_path / 'baseline-diff.json'}"
    )
