"""Detector benchmarks on the real broker, all on the same simulated events:
the raw-client ceiling, the naive faust floor, the Loopgate detector and its CPU time per event by
stage, event-to-exception latency at a steady 5,000 events/s and at half the detector's measured
capacity, and the detector's peak memory over many entities."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from loopgate.common.kafka import consumer as kafka_consumer
from loopgate.common.kafka import delete_topics_with_prefix, ensure_topics, topic_partitions
from loopgate.common.settings import Settings
from loopgate.detector.stages import STAGES
from loopgate_schemas import topics
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from loopgate_tools.progress import Reporter, Stage
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.publisher import publish

Result = dict[str, Any]

# Each poll of a worker's /metrics costs it CPU (its metrics thread renders the whole registry), so
# poll four times a second; rates and CPU per event come from two polls' own values and times.
POLL_SECONDS = 0.25
CONSUMED = "loopgate_events_consumed_total"
STAGE_CPU = "loopgate_detector_stage_cpu_seconds_total"
STAGES_GROUP = "detector-stages"
PER_EVENT = "µs/event"
REST = "fetch, faust and the event loop (the rest)"
NOT_MEASURED = "not measured"

CEILING_SHARE_TARGET = 0.5  # issue 13: the detector at half the raw client's speed or better
LATENCY_RATE = 5000.0
LATENCY_P99_TARGET_MS = 250.0
HALF_CAPACITY = "half the detector's capacity"
HALF_CAPACITY_P99_TARGET_MS = 1000.0


def result(
    group: str,
    name: str,
    value: float | None,
    unit: str,
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> Result:
    """One row of the table; `value` None with a `note` for a figure that was not measured."""
    figure: Result = {
        "group": group,
        "name": name,
        "value": None if value is None else round(value, 3),
        "unit": unit,
        "target": target,
        "met": met,
    }
    if note:
        figure["note"] = note
    return figure


def bench_settings(base: Settings, workdir: Path) -> Settings:
    return base.model_copy(
        update={
            "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-",
            "detector_metrics_port": free_port(),
            "detector_data_dir": workdir / "detector",
        }
    )


def spread_entities(events: Iterator[SimEvent], entities: int) -> Iterator[SimEvent]:
    """The same events with line items and placements spread over `entities` distinct ids
    (the memory benchmark: state grows with entities, not with events)."""
    for i, ev in enumerate(events):
        doc = orjson.loads(ev.value)
        data = doc["data"]
        n = i % entities
        if "line_item_id" in data:
            data["line_item_id"] = f"li-{n}"
        if "placement_id" in data:
            data["placement_id"] = doc["subject"] = f"plc-{n}"
        yield replace(ev, value=orjson.dumps(doc), key=doc["subject"].encode())


async def _consume_raw(settings: Settings, count: int, stage: Stage) -> tuple[float, float]:
    """The ceiling: a plain aiokafka consumer fetching in batches and parsing with orjson. Events/s,
    and the CPU time per event (µs) of this process, every thread, as the detector's total counts it."""
    names = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]
    tps = await topic_partitions(settings, names)
    consumer = kafka_consumer(
        settings,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        loads = orjson.loads
        started = time.perf_counter()
        cpu_started = time.process_time()
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    loads(record.value or b"")
                seen += len(records)
            stage.update(seen)
        cpu = time.process_time() - cpu_started
        return seen / (time.perf_counter() - started), cpu / seen * 1e6
    finally:
        await consumer.stop()


def _naive_faust(settings: Settings, count: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopgate_tools.bench.naive_faust",
            settings.kafka_bootstrap,
            f"{settings.topic_prefix}naive",
            str(count),
            settings.topic_prefix,
            *topics.UPSTREAM,
        ],
        capture_output=True,
        timeout=1800,
    )
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else b""
    if not line:
        raise RuntimeError(f"naive faust agent failed: {out.stderr[-2000:].decode(errors='replace')}")
    doc = orjson.loads(line)
    return float(doc["events"]) / float(doc["seconds"])


@dataclass(frozen=True)
class WorkerSample:
    """One poll of a detector worker: when, what its counters said, and the CPU it had used."""

    at: float  # time.perf_counter(), halfway through the scrape
    consumed: float
    stage_cpu: dict[str, float]  # seconds by stage; a stage the worker does not export is absent
    cpu: float  # user + system seconds of the whole process, every thread


@dataclass(frozen=True)
class DetectorRun:
    rate: float  # events/s between the first poll that saw consumed events and the last poll
    peak_rss_mb: float
    first: WorkerSample
    last: WorkerSample


def parse_worker_metrics(text: str) -> tuple[float, dict[str, float]]:
    """Events consumed (every topic and type) and CPU seconds by stage, from a worker's /metrics."""
    consumed = 0.0
    stage_cpu: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == CONSUMED:
                consumed += sample.value
            elif sample.name == STAGE_CPU and "stage" in sample.labels:
                stage = sample.labels["stage"]
                stage_cpu[stage] = stage_cpu.get(stage, 0.0) + sample.value
    return consumed, stage_cpu


def _scrape(port: int) -> str | None:
    try:
        # uncompressed: gzip would cost the worker more CPU per poll than rendering does
        return httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "identity"}, timeout=2).text
    except httpx.HTTPError:
        return None


def _consumed(port: int) -> float:
    text = _scrape(port)
    return parse_worker_metrics(text)[0] if text is not None else 0.0


def _sample(port: int, cpu_seconds: Callable[[], float]) -> WorkerSample | None:
    before = time.perf_counter()
    text = _scrape(port)
    after = time.perf_counter()
    if text is None:
        return None
    consumed, stage_cpu = parse_worker_metrics(text)
    return WorkerSample((before + after) / 2, consumed, stage_cpu, cpu_seconds())


def rate_between(first: WorkerSample, last: WorkerSample) -> float:
    """Events/s between two polls; NaN when one poll saw them all (one batch held everything)."""
    elapsed = last.at - first.at
    events = last.consumed - first.consumed
    return events / elapsed if elapsed > 0 and events > 0 else math.nan


def stage_rows(first: WorkerSample, last: WorkerSample) -> list[Result]:
    """The detector's CPU time per event between two polls: each stage as the worker counts it, the
    rest of its process (fetching, faust, the event loop, the metrics thread) and its total."""
    events = last.consumed - first.consumed
    stages = [*STAGES, *sorted(set(last.stage_cpu) - set(STAGES))]
    if events <= 0:
        skipped = "no window: one poll saw every event"
        return [
            result(STAGES_GROUP, name, None, PER_EVENT, note=skipped)
            for name in [*stages, REST, "Loopgate detector total"]
        ]

    def per_event(seconds: float) -> float:
        return seconds / events * 1e6

    rows: list[Result] = []
    measured = 0.0
    for stage in stages:
        if stage in last.stage_cpu:  # absent at the first poll: the stage had not run yet
            spent = per_event(last.stage_cpu[stage] - first.stage_cpu.get(stage, 0.0))
            measured += spent
            rows.append(result(STAGES_GROUP, stage, spent, PER_EVENT))
        else:
            rows.append(result(STAGES_GROUP, stage, None, PER_EVENT, note=NOT_MEASURED))
    total = per_event(last.cpu - first.cpu)
    unmeasured = [stage for stage in stages if stage not in last.stage_cpu]
    note = f"includes {', '.join(unmeasured)}: not measured" if unmeasured else ""
    rows.append(result(STAGES_GROUP, REST, total - measured, PER_EVENT, note=note))
    rows.append(result(STAGES_GROUP, "Loopgate detector total", total, PER_EVENT))
    return rows


def _high_water_mark(pid: int) -> int:
    """The process's peak resident memory so far (bytes, Linux's VmHWM), so a peak between polls counts; 0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _run_detector(
    settings: Settings, workdir: Path, count: int, stage: Stage, *, sample_memory: bool = False
) -> DetectorRun:
    """Start a detector worker on the published events; its rate and CPU from the first poll that saw
    consumed events to the last poll (startup, group join and table recovery are not throughput),
    and its peak resident memory."""
    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    peak = 0
    first: WorkerSample | None = None
    last: WorkerSample | None = None
    try:
        import psutil  # a dev dependency: imported when the benchmark runs, never when the CLI loads

        proc = psutil.Process(detector.proc.pid)  # type: ignore[union-attr]

        def cpu_seconds() -> float:
            times = proc.cpu_times()
            return float(times.user + times.system)

        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if not detector.alive():
                raise RuntimeError(f"detector exited:\n{detector.log()[-3000:]}")
            sample = _sample(settings.detector_metrics_port, cpu_seconds)
            if sample is not None:
                stage.update(sample.consumed)
                if sample.consumed and first is None:
                    first = sample
                if sample.consumed >= count:
                    last = sample
                    break
            if sample_memory:
                peak = max(peak, proc.memory_info().rss)
            time.sleep(POLL_SECONDS)
        else:
            raise TimeoutError("detector did not consume every event")
        peak = max(peak, proc.memory_info().rss, _high_water_mark(proc.pid))
    finally:
        detector.stop()
    assert first is not None and last is not None  # the loop leaves only with both
    return DetectorRun(rate_between(first, last), peak / 2**20, first, last)


@dataclass(frozen=True)
class LatencyRun:
    timed: list[tuple[float, float]]  # (published at, ms to its exception), one per exception timed
    thirds: tuple[float, float]  # the publish times that cut the run's events into thirds
    published_rate: float  # events/s the publisher reached, by the times it handed them on


def latency_rows(run: LatencyRun, at: str, p99_target_ms: float) -> list[Result]:
    """p50, p95 and p99 (against its target), p99 of the first and of the last third of the run's
    events by publish time (does latency grow with the run?), how many were timed, and the rate the
    publisher reached (it shares the machine: is the run at the rate it is named for?)."""
    latencies = [ms for _, ms in run.timed]
    rows: list[Result] = []
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        value = percentile(latencies, q)
        target, met = (f"<= {p99_target_ms:g}", value <= p99_target_ms) if name == "p99" else ("", None)
        rows.append(result("latency", f"event to exception {name} at {at}", value, "ms", target, met))
    first_cut, last_cut = run.thirds
    first_third = [ms for published, ms in run.timed if published < first_cut]
    last_third = [ms for published, ms in run.timed if published >= last_cut]
    rows.append(
        result(
            "latency", f"event to exception p99 at {at}, first third of the run", percentile(first_third, 0.99), "ms"
        )
    )
    rows.append(
        result("latency", f"event to exception p99 at {at}, last third of the run", percentile(last_third, 0.99), "ms")
    )
    rows.append(result("latency", f"exceptions timed at {at}", len(latencies), "records"))
    rows.append(result("latency", f"rate reached by the publisher at {at}", run.published_rate, "events/s"))
    return rows


async def _latency(
    settings: Settings, workdir: Path, progress: Reporter, *, rate: float, seconds: float, label: str
) -> LatencyRun:
    """Publish at a steady rate with a running detector; time from each event's publish to its
    exception record's timestamp on `exceptions` (CreateTime: set when the detector's producer
    sends it). Not the time this process reads it: its event loop also publishes, at up to tens of
    thousands of events a second, and a reader it starves (in a consumer group, it even lost its
    membership for a while) would time itself, not the detector."""
    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    sent_at: dict[str, float] = {}
    timed: list[tuple[float, float]] = []
    consumer = kafka_consumer(settings, auto_offset_reset="latest")  # assigned, no group: nothing to lose
    await consumer.start()
    tps = await topic_partitions(settings, [settings.exceptions_topic])
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: _consumed(settings.detector_metrics_port) >= 0 and detector.alive(),
            timeout=60,
            what="the detector",
        )
        # warm-up: the worker has joined its group and processed something before we time
        warm = list(generate(2000, seed=1001))
        with progress.stage(f"{label}: warm-up", total=len(warm)) as stage:
            await publish(settings, warm, rate=None)

            def warmed_up() -> bool:
                done = _consumed(settings.detector_metrics_port)
                stage.update(done)
                return done >= len(warm)

            await asyncio.to_thread(wait_until, warmed_up, timeout=120, what="the warm-up", interval=POLL_SECONDS)

        async def receive() -> None:
            async for message in consumer:
                created = message.timestamp / 1000  # ms, by the detector's producer
                event = orjson.loads(message.value or b"{}").get("event") or {}
                published = sent_at.get(event.get("id", ""))
                if published is not None:
                    timed.append((published, (created - published) * 1000))

        receiver = asyncio.create_task(receive())
        events = list(generate(int(rate * seconds), seed=1002))

        def stamped() -> Iterator[SimEvent]:
            for ev in events:
                sent_at[ev.event_id] = time.time()
                yield ev

        with progress.stage(f"{label}: publishing at {rate:,.0f}/s", total=len(events)) as stage:
            await publish(
                settings,
                stamped(),
                rate=rate,
                batch_size=50,
                linger_ms=0,
                progress=lambda s: stage.update(s.queued, note=f"{len(timed):,} timed"),
            )
        # The worker may have a backlog: wait until it has read every event (not timing out the
        # slowest exceptions), then a moment for its last exceptions to arrive here.
        expected = len(warm) + len(events)
        with progress.stage(f"{label}: the detector catching up", total=expected) as stage:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = await asyncio.to_thread(_consumed, settings.detector_metrics_port)
                stage.update(done, note=f"{len(timed):,} timed")
                if done >= expected:
                    break
                await asyncio.sleep(POLL_SECONDS)
        with progress.stage(f"{label}: 2 s for the last exceptions", unit=""):
            await asyncio.sleep(2)
        receiver.cancel()
    finally:
        await consumer.stop()
        detector.stop()
    return LatencyRun(timed, _thirds(events, sent_at), _published_rate(events, sent_at))


def _published_rate(events: list[SimEvent], sent_at: dict[str, float]) -> float:
    """Events/s from the first hand-off to the producer to the last."""
    elapsed = max(sent_at.values()) - min(sent_at.values()) if sent_at else 0.0
    return (len(events) - 1) / elapsed if elapsed > 0 else math.nan


def _thirds(events: list[SimEvent], sent_at: dict[str, float]) -> tuple[float, float]:
    """When the events a third and two thirds of the way through the run were published."""
    if not events:
        return math.inf, math.inf
    first, last = (sent_at.get(events[len(events) * k // 3].event_id, math.inf) for k in (1, 2))
    return first, last


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _published(settings: Settings, events: Iterator[SimEvent] | list[SimEvent], stage: Stage) -> None:
    asyncio.run(publish(settings, events, rate=None, progress=lambda s: stage.update(s.queued)))


def run_detector_benchmarks(
    base: Settings,
    workdir: Path,
    *,
    count: int,
    entities: int,
    memory_count: int,
    latency_seconds: float,
    progress: Reporter | None = None,
    measured: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Every detector figure, in the table's order; each is handed to `measured` as soon as it is known."""
    progress = progress or Reporter.silent()
    results: list[Result] = []

    def add(figure: Result) -> None:
        results.append(figure)
        if measured is not None:
            measured(figure)

    settings = bench_settings(base, workdir)
    asyncio.run(ensure_topics(settings))
    try:
        events = list(generate(count, seed=42))
        with progress.stage("detector: publishing", total=count) as stage:
            _published(settings, events, stage)
        with progress.stage("detector: raw aiokafka consumer", total=count) as stage:
            ceiling, ceiling_cpu = asyncio.run(_consume_raw(settings, count, stage))
        add(result("detector", "raw aiokafka + orjson ceiling", ceiling, "events/s"))
        with progress.stage("detector: naive faust agent (a subprocess)", unit=""):
            naive = _naive_faust(settings, count)
        add(result("detector", "naive faust agent (validate only)", naive, "events/s"))
        with progress.stage("detector: Loopgate detector", total=count) as stage:
            detector = _run_detector(settings, workdir, count, stage)
        add(result("detector", "Loopgate detector, one worker", detector.rate, "events/s"))
        add(result("detector", "detector / naive faust", detector.rate / naive, "x"))
        share = detector.rate / ceiling
        add(
            result(
                "detector",
                "detector / ceiling",
                share,
                "x",
                f">= {CEILING_SHARE_TARGET:g}",
                share >= CEILING_SHARE_TARGET,
            )
        )
        for row in stage_rows(detector.first, detector.last):
            add(row)
        add(result(STAGES_GROUP, "raw aiokafka + orjson ceiling total", ceiling_cpu, PER_EVENT))
    finally:
        asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))

    at_rate = f"{LATENCY_RATE:,.0f} events/s"
    settings = bench_settings(base, workdir)
    asyncio.run(ensure_topics(settings))
    try:
        run = asyncio.run(
            _latency(settings, workdir, progress, rate=LATENCY_RATE, seconds=latency_seconds, label="latency")
        )
        for row in latency_rows(run, at_rate, LATENCY_P99_TARGET_MS):
            add(row)
    finally:
        asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))

    half = detector.rate / 2
    if math.isnan(half) or half <= 0:
        add(
            result(
                "latency",
                f"event to exception p99 at {HALF_CAPACITY}",
                None,
                "ms",
                f"<= {HALF_CAPACITY_P99_TARGET_MS:g}",
                note="skipped: the detector's capacity was not measured",
            )
        )
    else:
        add(result("latency", f"publish rate at {HALF_CAPACITY}", half, "events/s"))
        settings = bench_settings(base, workdir)
        asyncio.run(ensure_topics(settings))
        try:
            run = asyncio.run(
                _latency(
                    settings, workdir, progress, rate=half, seconds=latency_seconds, label="latency at half capacity"
                )
            )
            for row in latency_rows(run, HALF_CAPACITY, HALF_CAPACITY_P99_TARGET_MS):
                add(row)
        finally:
            asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))

    for n in (memory_count // 4, memory_count):
        settings = bench_settings(base, workdir)
        asyncio.run(ensure_topics(settings))
        try:
            with progress.stage(f"memory: publishing over {entities:,} entities", total=n) as stage:
                _published(settings, spread_entities(generate(n, seed=43), entities), stage)
            with progress.stage("memory: Loopgate detector", total=n) as stage:
                memory = _run_detector(settings, workdir, n, stage, sample_memory=True)
            add(
                result(
                    "memory",
                    f"detector peak RSS, {n:,} events over {entities:,} entities",
                    memory.peak_rss_mb,
                    "MB",
                    "< 500",
                    memory.peak_rss_mb < 500,
                )
            )
        finally:
            asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))
    return results
