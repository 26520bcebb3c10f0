"""Detector benchmarks on the real broker, all on the same simulated events:
the raw-client ceiling, the naive faust floor, the Loopgate detector, event-to-exception latency
at a steady rate, and the detector's peak memory over many entities."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from loopgate.common.kafka import consumer as kafka_consumer
from loopgate.common.kafka import delete_topics_with_prefix, ensure_topics, topic_partitions
from loopgate.common.settings import Settings
from loopgate_schemas import topics
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from loopgate_tools.progress import Reporter, Stage
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.publisher import publish

Result = dict[str, Any]


def result(group: str, name: str, value: float, unit: str, target: str = "", met: bool | None = None) -> Result:
    return {"group": group, "name": name, "value": round(value, 3), "unit": unit, "target": target, "met": met}


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


async def _consume_raw(settings: Settings, count: int, stage: Stage) -> float:
    """The ceiling: a plain aiokafka consumer fetching in batches and parsing with orjson."""
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
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    loads(record.value or b"")
                seen += len(records)
            stage.update(seen)
        return seen / (time.perf_counter() - started)
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


def _consumed(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "loopgate_events_consumed_total"
    )


def _run_detector(
    settings: Settings, workdir: Path, count: int, stage: Stage, *, sample_memory: bool = False
) -> dict[str, float]:
    """Start a detector worker on the published events; events/s from its first to its last
    consumed event (its own counter), and its peak resident memory."""
    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    peak = 0
    first_at = last_at = 0.0
    first_seen = 0.0
    try:
        import psutil  # a dev dependency: imported when the benchmark runs, never when the CLI loads

        proc = psutil.Process(detector.proc.pid)  # type: ignore[union-attr]
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if not detector.alive():
                raise RuntimeError(f"detector exited:\n{detector.log()[-3000:]}")
            done = _consumed(settings.detector_metrics_port)
            stage.update(done)
            now = time.perf_counter()
            if done and not first_at:
                first_at, first_seen = now, done
            if sample_memory:
                peak = max(peak, proc.memory_info().rss)
            if done >= count:
                last_at = now
                break
            time.sleep(0.02)
        else:
            raise TimeoutError("detector did not consume every event")
        peak = max(peak, proc.memory_info().rss)
    finally:
        detector.stop()
    # Rate over what was consumed after the first poll that saw any: startup (group join, table
    # recovery) is not throughput. Sizes where one batch holds everything give no rate (smoke runs).
    elapsed = last_at - first_at
    rate = (count - first_seen) / elapsed if elapsed > 0 and count > first_seen else float("nan")
    return {"rate": rate, "peak_rss_mb": peak / 2**20}


async def _latency(
    settings: Settings, workdir: Path, progress: Reporter, *, rate: float, seconds: float
) -> list[float]:
    """Publish at a steady rate with a running detector; time from each event's publish to its
    exception's arrival on `exceptions`, in ms."""
    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    consumer = kafka_consumer(
        settings,
        settings.exceptions_topic,
        auto_offset_reset="latest",
        group_id=f"{settings.topic_prefix}latency",
    )
    await consumer.start()
    try:
        await asyncio.to_thread(
            wait_until,
            lambda: _consumed(settings.detector_metrics_port) >= 0 and detector.alive(),
            timeout=60,
            what="the detector",
        )
        # warm-up: the worker has joined its group and processed something before we time
        warm = list(generate(2000, seed=1001))
        with progress.stage("latency: warm-up", total=len(warm)) as stage:
            await publish(settings, warm, rate=None)

            def warmed_up() -> bool:
                done = _consumed(settings.detector_metrics_port)
                stage.update(done)
                return done >= len(warm)

            await asyncio.to_thread(wait_until, warmed_up, timeout=120, what="the warm-up")

        async def receive() -> None:
            async for message in consumer:
                arrived = time.time()
                event = orjson.loads(message.value).get("event") or {}
                published = sent_at.get(event.get("id", ""))
                if published is not None:
                    latencies.append((arrived - published) * 1000)

        receiver = asyncio.create_task(receive())
        events = list(generate(int(rate * seconds), seed=1002))

        def stamped() -> Iterator[SimEvent]:
            for ev in events:
                sent_at[ev.event_id] = time.time()
                yield ev

        with progress.stage(f"latency: publishing at {rate:,.0f}/s", total=len(events)) as stage:
            await publish(
                settings,
                stamped(),
                rate=rate,
                batch_size=50,
                linger_ms=0,
                progress=lambda s: stage.update(s.queued, note=f"{len(latencies):,} timed"),
            )
        with progress.stage("latency: 3 s for the last exceptions", unit=""):
            await asyncio.sleep(3)
        receiver.cancel()
    finally:
        await consumer.stop()
        detector.stop()
    return latencies


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
            ceiling = asyncio.run(_consume_raw(settings, count, stage))
        add(result("detector", "raw aiokafka + orjson ceiling", ceiling, "events/s"))
        with progress.stage("detector: naive faust agent (a subprocess)", unit=""):
            naive = _naive_faust(settings, count)
        add(result("detector", "naive faust agent (validate only)", naive, "events/s"))
        with progress.stage("detector: Loopgate detector", total=count) as stage:
            detector = _run_detector(settings, workdir, count, stage)
        add(
            result(
                "detector",
                "Loopgate detector, one worker",
                detector["rate"],
                "events/s",
                ">= 50000",
                detector["rate"] >= 50_000,
            )
        )
        add(
            result(
                "detector",
                "detector / naive faust",
                detector["rate"] / naive,
                "x",
                ">= 4.5",
                detector["rate"] / naive >= 4.5,
            )
        )
        add(result("detector", "detector / ceiling", detector["rate"] / ceiling, "x"))
    finally:
        asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))

    settings = bench_settings(base, workdir)
    asyncio.run(ensure_topics(settings))
    try:
        latencies = asyncio.run(_latency(settings, workdir, progress, rate=5000, seconds=latency_seconds))
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            target, met = ("<= 250", percentile(latencies, q) <= 250) if name == "p99" else ("", None)
            add(
                result(
                    "latency",
                    f"event to exception {name} at 5,000 events/s",
                    percentile(latencies, q),
                    "ms",
                    target,
                    met,
                )
            )
        add(result("latency", "exceptions timed", len(latencies), "records"))
    finally:
        asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))

    for n in (memory_count // 4, memory_count):
        settings = bench_settings(base, workdir)
        asyncio.run(ensure_topics(settings))
        try:
            with progress.stage(f"memory: publishing over {entities:,} entities", total=n) as stage:
                _published(settings, spread_entities(generate(n, seed=43), entities), stage)
            with progress.stage("memory: Loopgate detector", total=n) as stage:
                run = _run_detector(settings, workdir, n, stage, sample_memory=True)
            add(
                result(
                    "memory",
                    f"detector peak RSS, {n:,} events over {entities:,} entities",
                    run["peak_rss_mb"],
                    "MB",
                    "< 500",
                    run["peak_rss_mb"] < 500,
                )
            )
        finally:
            asyncio.run(delete_topics_with_prefix(settings, settings.topic_prefix))
    return results
