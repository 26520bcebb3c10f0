"""A short run of `loopgate-tools bench`: it runs end to end, produces every detector figure and writes the
report (no timing asserted). The API and dispatcher figures: test_bench_api_smoke.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loopgate.common.settings import Settings
from loopgate_tools.processes import LOOPGATE_TOOLS, run_cli

pytestmark = pytest.mark.kafka

DETECTOR_FIGURES = {
    "raw aiokafka + orjson ceiling",
    "naive faust agent (validate only)",
    "Loopgate detector, one worker",
    "detector / naive faust",
    "detector / ceiling",
    "event to exception p50 at 5,000 events/s",
    "event to exception p95 at 5,000 events/s",
    "event to exception p99 at 5,000 events/s",
    "exceptions timed",
}


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
    names = {r["name"] for r in results}
    assert DETECTOR_FIGURES <= names
    assert sum(1 for n in names if n.startswith("detector peak RSS")) == 2
    groups = {r["group"] for r in results}
    assert groups == {"detector", "latency", "memory"}
    for r in results:
        assert isinstance(r["value"], int | float) and math.isfinite(r["value"]) and r["value"] > 0, r
    assert report["machine"]["cores"] >= 1
    table = (tmp_path / "benchmarks.md").read_text()
    for r in results:
        assert f"| {r['name']} |" in table
