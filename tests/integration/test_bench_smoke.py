"""A short run of `loopgate-tools bench`: it runs end to end, produces every detector figure in the table's
order with its unit and target (the CPU per event of each stage, both latency runs) and writes the report
(no timing asserted; a met target only agrees with its value). The API and dispatcher figures:
test_bench_api_smoke.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loopgate.common.settings import Settings
from loopgate_tools.processes import LOOPGATE_TOOLS, run_cli

pytestmark = pytest.mark.kafka

DETECTOR_ROWS = [
    ("raw aiokafka + orjson ceiling", "events/s", ""),
    ("naive faust agent (validate only)", "events/s", ""),
    ("Loopgate detector, one worker", "events/s", ""),
    ("detector / naive faust", "x", ""),
    ("detector / ceiling", "x", ">= 0.5"),
]
STAGE_ROWS = [
    *(
        (stage, "µs/event", "")
        for stage in ("validate", "rules", "baselines", "sampling", "records", "produce", "commit")
    ),
    ("fetch, faust and the event loop (the rest)", "µs/event", ""),
    ("Loopgate detector total", "µs/event", ""),
    ("raw aiokafka + orjson ceiling total", "µs/event", ""),
]


def latency_rows(at: str, p99_target: str) -> list[tuple[str, str, str]]:
    return [
        (f"event to exception p50 at {at}", "ms", ""),
        (f"event to exception p95 at {at}", "ms", ""),
        (f"event to exception p99 at {at}", "ms", p99_target),
        (f"event to exception p99 at {at}, first third of the run", "ms", ""),
        (f"event to exception p99 at {at}, last third of the run", "ms", ""),
        (f"exceptions timed at {at}", "records", ""),
        (f"rate reached by the publisher at {at}", "events/s", ""),
    ]


LATENCY_ROWS = [
    *latency_rows("5,000 events/s", "<= 250"),
    ("publish rate at half the detector's capacity", "events/s", ""),
    *latency_rows("half the detector's capacity", "<= 1000"),
]
MEMORY_ROWS = [
    ("detector peak RSS, 2,000 events over 2,000 entities", "MB", "< 500"),
    ("detector peak RSS, 8,000 events over 2,000 entities", "MB", "< 500"),
]


def test_the_benchmark_produces_every_figure_and_the_markdown_table(kafka_bootstrap: str, tmp_path: Path) -> None:
    run_cli(
        Settings(kafka_bootstrap=kafka_bootstrap),
        "bench",
        "--size",
        "smoke",
        "--skip-api",
        "--output",
        str(tmp_path),
        timeout=900,
        command=LOOPGATE_TOOLS,
    )
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    results = report["results"]
    # every row in the table's order, with its group, unit and target
    assert [(r["group"], r["name"], r["unit"], r["target"]) for r in results] == [
        *(("detector", *row) for row in DETECTOR_ROWS),
        *(("detector-stages", *row) for row in STAGE_ROWS),
        *(("latency", *row) for row in LATENCY_ROWS),
        *(("memory", *row) for row in MEMORY_ROWS),
    ]
    parts = {name for name, _, _ in STAGE_ROWS[:8]}  # the stages and the rest add up to the total
    for r in results:
        # the worker exports every stage's CPU: none is left "not measured", and nothing is missing
        assert isinstance(r["value"], int | float) and math.isfinite(r["value"]) and "note" not in r, r
        assert r["value"] >= 0 if r["name"] in parts else r["value"] > 0, r
        if not r["target"]:
            assert r["met"] is None, r
    rows = {r["name"]: r for r in results}
    share = rows["detector / ceiling"]
    assert share["met"] is (share["value"] >= 0.5)
    for name, limit in (("5,000 events/s", 250), ("half the detector's capacity", 1000)):
        p99 = rows[f"event to exception p99 at {name}"]
        assert p99["met"] is (p99["value"] <= limit), p99
    # the second latency run publishes at half the rate the detector run measured
    assert rows["publish rate at half the detector's capacity"]["value"] == pytest.approx(
        rows["Loopgate detector, one worker"]["value"] / 2, rel=1e-3
    )
    stages = sum(rows[name]["value"] for name in parts)
    assert stages == pytest.approx(rows["Loopgate detector total"]["value"], abs=0.01)
    assert report["machine"]["cores"] >= 1
    table = (tmp_path / "benchmarks.md").read_text()
    for r in results:
        assert f"| {r['name']} |" in table
