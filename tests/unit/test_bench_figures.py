"""The detector benchmark's arithmetic: CPU per event by stage from two polls of a worker's /metrics,
the rate between them, the latency rows, and how a figure that was not measured is shown."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from loopgate_tools.bench.detector import (
    NOT_MEASURED,
    PER_EVENT,
    REST,
    STAGES,
    STAGES_GROUP,
    LatencyRun,
    WorkerSample,
    latency_rows,
    parse_worker_metrics,
    rate_between,
    stage_rows,
)
from loopgate_tools.bench.report import describe, markdown, shown


def worker_metrics(consumed: dict[str, float], stage_cpu: dict[str, float] | None) -> str:
    """A worker's /metrics as prometheus-client renders it; `stage_cpu` None: no stage counter at all."""
    registry = CollectorRegistry()
    events = Counter("loopgate_events_consumed_total", "", ["topic", "type"], registry=registry)
    for topic, n in consumed.items():
        events.labels(topic, "some.type").inc(n)
    if stage_cpu is not None:
        stages = Counter("loopgate_detector_stage_cpu_seconds_total", "", ["stage"], registry=registry)
        for stage, seconds in stage_cpu.items():
            stages.labels(stage).inc(seconds)
    return generate_latest(registry).decode()


def sample(at: float, text: str, cpu: float) -> WorkerSample:
    consumed, stage_cpu = parse_worker_metrics(text)
    return WorkerSample(at, consumed, stage_cpu, cpu)


def by_name(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(r["name"]): r for r in rows}


def test_the_worker_metrics_give_events_consumed_over_every_topic_and_cpu_by_stage() -> None:
    text = worker_metrics({"bids": 1000, "content": 500}, {"validate": 0.25, "commit": 0.0})

    assert parse_worker_metrics(text) == (1500.0, {"validate": 0.25, "commit": 0.0})


def test_each_stage_its_cpu_per_event_and_the_rest_is_the_process_total_less_the_stages() -> None:
    first = sample(10.0, worker_metrics({"bids": 1000}, dict.fromkeys(STAGES, 0.01)), cpu=2.0)
    spent = {"validate": 0.4, "rules": 0.3, "baselines": 0.2, "sampling": 0.1, "records": 0.2, "produce": 0.1}
    last = sample(12.0, worker_metrics({"bids": 11_000}, {s: spent.get(s, 0.0) + 0.01 for s in STAGES}), cpu=3.5)

    rows = stage_rows(first, last)

    assert [r["name"] for r in rows] == [*STAGES, REST, "Loopgate detector total"]
    assert {(r["group"], r["unit"], r["target"], r["met"]) for r in rows} == {(STAGES_GROUP, PER_EVENT, "", None)}
    values = {str(r["name"]): r["value"] for r in rows}
    # 10,000 events between the polls: 1.5 s of process CPU is 150 µs an event, 1.3 s of stages 130
    assert values == pytest.approx(
        {
            "validate": 40.0,
            "rules": 30.0,
            "baselines": 20.0,
            "sampling": 10.0,
            "records": 20.0,
            "produce": 10.0,
            "commit": 0.0,
            REST: 20.0,
            "Loopgate detector total": 150.0,
        }
    )
    assert not any("note" in r for r in rows)


def test_a_worker_without_the_stage_counter_has_its_stages_not_measured_and_its_total_measured() -> None:
    first = sample(10.0, worker_metrics({"bids": 1000}, None), cpu=2.0)
    last = sample(12.0, worker_metrics({"bids": 11_000}, None), cpu=3.5)

    rows = by_name(stage_rows(first, last))

    for stage in STAGES:
        assert rows[stage]["value"] is None and rows[stage]["note"] == NOT_MEASURED
        assert shown(rows[stage]) == NOT_MEASURED
    assert rows["Loopgate detector total"]["value"] == pytest.approx(150.0)
    assert rows[REST]["value"] == pytest.approx(150.0)
    assert rows[REST]["note"] == f"includes {', '.join(STAGES)}: not measured"


def test_a_stage_first_seen_after_the_first_poll_counted_from_zero() -> None:
    first = sample(10.0, worker_metrics({"bids": 1000}, {"validate": 0.1}), cpu=2.0)
    last = sample(12.0, worker_metrics({"bids": 3000}, {"validate": 0.3, "commit": 0.02}), cpu=2.5)

    rows = by_name(stage_rows(first, last))

    assert rows["validate"]["value"] == pytest.approx(100.0)
    assert rows["commit"]["value"] == pytest.approx(10.0)
    assert rows["rules"]["value"] is None


def test_the_rate_is_taken_between_the_two_polls_own_values_and_times() -> None:
    first = WorkerSample(at=10.0, consumed=1000, stage_cpu={}, cpu=0.0)
    last = WorkerSample(at=12.5, consumed=31_000, stage_cpu={}, cpu=0.0)

    assert rate_between(first, last) == pytest.approx(12_000.0)
    assert math.isnan(rate_between(last, last))
    assert {r["note"] for r in stage_rows(last, last)} == {"no window: one poll saw every event"}


def test_latency_rows_give_percentiles_the_p99_target_and_the_first_and_last_third() -> None:
    # published at 0..299 s, the cuts at 100 and 200 s; latency grows with the run
    timed = [(float(t), 10.0 + t) for t in range(300)]
    rows = latency_rows(LatencyRun(timed, (100.0, 200.0), 4990.0), "5,000 events/s", 250.0)

    assert [(r["name"], r["value"], r["unit"], r["target"], r["met"]) for r in rows] == [
        ("event to exception p50 at 5,000 events/s", 160.0, "ms", "", None),
        ("event to exception p95 at 5,000 events/s", 295.0, "ms", "", None),
        ("event to exception p99 at 5,000 events/s", 307.0, "ms", "<= 250", False),
        ("event to exception p99 at 5,000 events/s, first third of the run", 109.0, "ms", "", None),
        ("event to exception p99 at 5,000 events/s, last third of the run", 309.0, "ms", "", None),
        ("exceptions timed at 5,000 events/s", 300, "records", "", None),
        ("rate reached by the publisher at 5,000 events/s", 4990.0, "events/s", "", None),
    ]


def test_a_figure_without_a_value_shows_its_note_in_the_table_and_the_progress_line() -> None:
    skipped = {
        "group": "latency",
        "name": "event to exception p99 at half the detector's capacity",
        "value": None,
        "unit": "ms",
        "target": "<= 1000",
        "met": None,
        "note": "skipped: the detector's capacity was not measured",
    }
    info = {"cpu": "cpu", "cores": 2, "memory_gb": 4.0, "python": "3.11", "kafka": "kafka"}

    assert describe(skipped) == (
        "latency  event to exception p99 at half the detector's capacity: "
        "skipped: the detector's capacity was not measured (target <= 1000)"
    )
    assert (
        "| latency | event to exception p99 at half the detector's capacity | "
        "skipped: the detector's capacity was not measured | ms | <= 1000 |  |"
    ) in markdown([skipped], info, "smoke", 1.0)
    assert shown({"value": 12.25, "note": "includes commit: not measured"}) == "12.2 (includes commit: not measured)"
