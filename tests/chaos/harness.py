"""One harness for every chaos scenario: publish simulated upstream events (whose ground truth is
known) to the real broker while the real service processes run, inject a fault, wait until every
service has committed everything, and compare what the resolution API holds with the ground truth.

Sizes come from the environment so `make test` runs a short version and `make chaos` the full one:
LOOPGATE_CHAOS_EVENTS (events per scenario), LOOPGATE_CHAOS_PUBLISH_SECONDS (how long publishing
lasts, so faults land mid-stream) and LOOPGATE_CHAOS_API_OUTAGE_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families

from loopgate.common.kafka import consumer_group_lag, read_topic
from loopgate.common.settings import Settings
from loopgate.detector.config import load_detection_config
from loopgate.detector.processing import Detector
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.publisher import PublishStats, publish
from tests.chaos import report
from tests.fixtures.api import held_exceptions
from tests.fixtures.kafka import KAFKA_SCRIPT
from tests.fixtures.services import ServiceProcess, Stack, wait_until
from tests.fixtures.tables import ChangelogTable
from tests.fixtures.truth import expected_exception_ids

CHAOS_EVENTS = int(os.environ.get("LOOPGATE_CHAOS_EVENTS", "1200"))
PUBLISH_SECONDS = float(os.environ.get("LOOPGATE_CHAOS_PUBLISH_SECONDS", "6"))
API_OUTAGE_SECONDS = float(os.environ.get("LOOPGATE_CHAOS_API_OUTAGE_SECONDS", "10"))
SEED = 41
# A worker killed with SIGKILL holds its partitions this long before the group moves on.
SESSION_TIMEOUT_SECONDS = 10.0
SETTLE_TIMEOUT = 300.0


@dataclass(frozen=True)
class GroundTruth:
    """The simulator's events, and what one detector must make of them."""

    events: list[SimEvent]
    ids: frozenset[str]  # exception_id of every (event, rule) the ground truth demands, audit samples too
    fingerprints: frozenset[str]  # the exceptions the API must open (nothing is resolved meanwhile)
    bid_baselines: dict[str, list[float]]  # the baselines a single worker ends with
    delivery_baselines: dict[str, list[float]]


@lru_cache
def ground_truth(count: int = CHAOS_EVENTS, seed: int = SEED) -> GroundTruth:
    config = load_detection_config()
    events = list(generate(count, anomaly_share=0.05, seed=seed))
    ids = expected_exception_ids(events, config)
    # A single in-process detector on the same stream gives the fingerprints and the baselines; its
    # records must be exactly the ground truth, or the comparison below would prove nothing.
    detector = Detector(config)
    bids, delivery = ChangelogTable(), ChangelogTable()  # baselines as their changelogs read back
    offsets: dict[str, int] = {}
    reference: dict[str, str] = {}
    for ev in events:
        offset = offsets[ev.topic] = offsets.get(ev.topic, -1) + 1
        outcome = detector.process(
            ev.topic,
            ev.value,
            topic=ev.topic,
            partition=0,
            offset=offset,
            bid_baselines=bids,
            delivery_baselines=delivery,
        )
        reference.update((r.exception_id, r.fingerprint) for r in outcome.records)
    assert set(reference) == ids, "the reference detector disagrees with the simulator's ground truth"
    return GroundTruth(events, frozenset(ids), frozenset(reference.values()), bids, delivery)


class Publisher:
    """Publishes events from a background thread at a steady rate; `pulled` tells how far it got."""

    def __init__(self, settings: Settings, events: list[SimEvent], seconds: float | None) -> None:
        self.settings = settings
        self.events = events
        self.rate = len(events) / seconds if seconds else None
        self.pulled = 0
        self.stats: PublishStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="chaos-publisher", daemon=True)

    def _counted(self) -> Iterator[SimEvent]:
        for event in self.events:
            self.pulled += 1
            yield event

    def _run(self) -> None:
        try:
            self.stats = asyncio.run(publish(self.settings, self._counted(), rate=self.rate))
        except BaseException as err:  # reported by join()
            self.error = err

    def start(self) -> Publisher:
        self.thread.start()
        return self

    def wait_share(self, share: float) -> None:
        """Block until this share of the events has been handed to the producer."""
        wanted = int(len(self.events) * share)
        wait_until(
            lambda: self.pulled >= wanted or not self.thread.is_alive(),
            timeout=300,
            what=f"{wanted} events to be published",
            interval=0.05,
        )

    def join(self) -> PublishStats:
        self.thread.join(600)
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        assert (self.stats.sent, self.stats.failed) == (len(self.events), 0), self.stats.first_error
        return self.stats


@dataclass
class ApiState:
    exceptions: list[dict[str, Any]]
    record_ids: list[str]  # the exception_id of every record the API took in, once per history entry


@dataclass
class ChaosRun:
    """A scenario on one stack: the events it published, and how to measure the end state."""

    stack: Stack
    truth: GroundTruth = field(default_factory=ground_truth)
    published: int = 0
    expect_running: tuple[str, ...] = ("api", "detector", "dispatcher")

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    # --- publishing --------------------------------------------------------------------------

    def publish(self, events: list[SimEvent] | None = None, *, seconds: float | None = PUBLISH_SECONDS) -> Publisher:
        events = self.truth.events if events is None else events
        self.published += len(events)
        return Publisher(self.settings, events, seconds).start()

    def publish_now(self, events: list[SimEvent] | None = None, *, seconds: float | None = None) -> PublishStats:
        return self.publish(events, seconds=seconds).join()

    # --- observing ---------------------------------------------------------------------------

    def lags(self) -> tuple[int, int]:
        s = self.settings

        async def measure() -> tuple[int, int]:
            detector = await consumer_group_lag(
                s, s.group(s.detector_app_id), [s.bids_topic, s.trafficking_topic, s.content_topic]
            )
            # measured after the detector's: it commits a message only once its records are out
            dispatcher = await consumer_group_lag(s, s.group(s.dispatcher_group), [s.exceptions_topic])
            return detector, dispatcher

        return asyncio.run(measure())

    def committed(self) -> bool:
        for name in self.expect_running:
            process = self.stack.processes[name]
            code = process.proc and process.proc.returncode
            assert process.alive(), f"{name} exited ({code}):\n{self.stack.logs()}"
        return self.lags() == (0, 0)

    def settle(self, since: float) -> float:
        """Wait until every upstream message and exception record is committed; seconds since `since`."""
        try:
            wait_until(self.committed, timeout=SETTLE_TIMEOUT, what="every service to commit everything", interval=0.5)
        except TimeoutError as err:
            raise AssertionError(f"{err}; lags {self.lags()}\n{self.stack.logs()}") from None
        return time.monotonic() - since

    def api_state(self) -> ApiState:
        with self.stack.client() as http:
            return ApiState(*held_exceptions(http))

    def topic(self, name: str) -> list[ConsumerRecord]:
        return asyncio.run(read_topic(self.settings, name))

    def metrics(self, port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(port)

    # --- the verdict -------------------------------------------------------------------------

    def measure(self, scenario: str, since: float) -> report.Row:
        """Settle, then compare the API's records with the ground truth; the row goes in the table."""
        settle_seconds = self.settle(since)
        state = self.api_state()
        held = set(state.record_ids)
        expected = self.truth.ids
        duplicated = (
            (len(state.record_ids) - len(held))  # one record taken in twice
            + (sum(e["occurrences"] for e in state.exceptions) - len(state.record_ids))  # counted twice
            + (len(state.exceptions) - len({e["fingerprint"] for e in state.exceptions}))  # opened twice
        )
        row = report.record(
            report.Row(
                scenario=scenario,
                published=self.published,
                expected=len(expected),
                found=len(held & expected),
                lost=len(expected - held),
                duplicated=duplicated,
                unexpected=len(held - expected),
                topic_records=len(self.topic(self.settings.exceptions_topic)),
                settle_seconds=settle_seconds,
            )
        )
        assert {e["fingerprint"] for e in state.exceptions} == self.truth.fingerprints
        return row


@dataclass
class PrivateBroker:
    """A broker of this test's own (scripts/kafka.sh on free ports and a temporary data dir), so
    stopping it disturbs no other test sharing the session broker."""

    env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.env['KAFKA_PORT']}"

    def start(self) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], env=self.env, check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(["bash", str(KAFKA_SCRIPT), "stop"], env=self.env, check=True, capture_output=True)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of a service's /metrics: (name, sorted labels) -> value."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every sample whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def graceful_stop(process: ServiceProcess) -> tuple[int | None, float]:
    """SIGTERM, wait; (exit code, seconds it took). Asserts the API completed its shutdown."""
    started = time.monotonic()
    code = process.stop(timeout=60)
    seconds = time.monotonic() - started
    if process.name == "api":
        assert "Application shutdown complete" in process.log()[-4000:], process.log()[-4000:]
    return code, seconds


def halves(events: Iterable[SimEvent]) -> tuple[list[SimEvent], list[SimEvent]]:
    items = list(events)
    return items[: len(items) // 2], items[len(items) // 2 :]
