"""`loopgate-tools bench`: run every benchmark, then write docs/benchmarks.{json,md} and print the table."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from loopgate.common.kafka import wait_for_broker
from loopgate.common.settings import get_settings
from loopgate_tools.progress import Reporter

DOCS = Path(__file__).resolve().parents[3] / "docs"

SIZES = {
    # detector events, entities for the memory run, memory-run events, seconds of each latency run;
    # enough detector events for its run to span several of the benchmark's 0.25 s polls
    "full": {"count": 300_000, "entities": 100_000, "memory_count": 1_000_000, "latency_seconds": 60.0},
    "quick": {"count": 150_000, "entities": 10_000, "memory_count": 40_000, "latency_seconds": 5.0},
    "smoke": {"count": 50_000, "entities": 2_000, "memory_count": 8_000, "latency_seconds": 2.0},
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    kafka = "unknown"
    pom = Path(__file__).resolve().parents[3] / "deploy" / "kafka" / "pom.xml"
    if pom.exists():
        text = pom.read_text()
        kafka = text.split("<kafka.version>")[1].split("<")[0] if "<kafka.version>" in text else kafka
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(_memory_bytes() / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "kafka": f"Apache Kafka {kafka}, single-node KRaft on 127.0.0.1",
    }


def markdown(results: list[dict[str, Any]], info: dict[str, Any], size: str, seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` ({size} size) in {seconds:.0f} s on: {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_gb']} GiB, Python {info['python']}, {info['kafka']}. One run; these machines are noisy, "
        "so compare ratios within a run.",
        "",
        "| group | measure | value | unit | target | met |",
        "|---|---|---:|---|---|---|",
    ]
    for r in results:
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        lines.append(f"| {r['group']} | {r['name']} | {shown(r)} | {r['unit']} | {r['target']} | {met} |")
    return "\n".join(lines) + "\n"


def shown(figure: dict[str, Any]) -> str:
    """A figure's value as the table shows it: `10,512.3`, `0.46`, `812`, `not measured` (a figure
    without a value shows its note), or `12.5 (includes commit: not measured)`."""
    value = figure["value"]
    note = figure.get("note", "")
    if value is None:
        return str(note or "not measured")
    # two decimals below 10, so a ratio of 0.46 does not show as 0.5 beside a target of 0.5
    text = (f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}") if isinstance(value, float) else str(value)
    return f"{text} ({note})" if note else text


def describe(figure: dict[str, Any]) -> str:
    """One measured figure as a line: `detector  detector / ceiling: 0.11 x (target >= 0.5: not met)`."""
    unit = f" {figure['unit']}" if figure["value"] is not None else ""
    verdict = {True: "met", False: "not met", None: ""}[figure["met"]]
    target = f" (target {figure['target']}" + (f": {verdict})" if verdict else ")") if figure["target"] else ""
    return f"{figure['group']}  {figure['name']}: {shown(figure)}{unit}{target}"


def bench(
    size: str = typer.Option("full", help="full (make bench), quick, or smoke (the test suite's)"),
    output: Path = typer.Option(DOCS, help="where benchmarks.json and benchmarks.md go"),
    skip_api: bool = typer.Option(False, help="only the detector benchmarks"),
) -> None:
    """Measure the detector against the raw-client ceiling and naive faust, latency, memory, the API
    and the dispatcher; write docs/benchmarks.{json,md} and print the table."""
    from loopgate_tools.bench.detector import run_detector_benchmarks

    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}")
    settings = get_settings()
    asyncio.run(wait_for_broker(settings))
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="loopgate-bench-") as tmp, Reporter.stderr() as progress:

        def measured(figure: dict[str, Any]) -> None:
            progress.line(describe(figure))

        results += run_detector_benchmarks(
            settings,
            Path(tmp),
            **SIZES[size],  # type: ignore[arg-type]
            progress=progress,
            measured=measured,
        )
        if not skip_api:
            from loopgate_tools.bench.api import FULL, QUICK, Sizes, run_api_benchmarks

            api_sizes = {"full": FULL, "quick": QUICK, "smoke": Sizes(60, 20, 300, 20, 400, 100)}[size]
            results += run_api_benchmarks(
                Path(tmp), quick=size != "full", sizes=api_sizes, progress=progress, measured=measured
            )
    seconds = time.monotonic() - started
    info = machine()
    output.mkdir(parents=True, exist_ok=True)
    (output / "benchmarks.json").write_text(json.dumps({"machine": info, "size": size, "results": results}, indent=2))
    table = markdown(results, info, size, seconds)
    (output / "benchmarks.md").write_text(table)
    typer.echo(table)


def _memory_bytes() -> int:
    import psutil  # a dev dependency: imported when a benchmark runs, never when the CLI loads

    return int(psutil.virtual_memory().total)
