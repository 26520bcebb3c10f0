"""Progress of the long commands: what it counts, and that a log (not a terminal) gets a few plain lines."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console
from typer.testing import CliRunner

from loopgate.common.settings import Settings
from loopgate_tools.bench.report import describe
from loopgate_tools.evaluation import processed_count
from loopgate_tools.progress import Reporter
from loopgate_tools.simulator.cli import app as simulate_app
from loopgate_tools.simulator.cli import publishing_stage, show_publishing
from loopgate_tools.simulator.generator import generate
from loopgate_tools.simulator.publisher import PublishStats, publish


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recording(*, terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120, color_system=None), out


class InstantProducer:
    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_a_log_gets_a_start_line_one_line_per_interval_and_an_end_line() -> None:
    console, out = recording(terminal=False)
    clock = FakeClock()
    reporter = Reporter(console, plain_every=30.0, clock=clock)
    with reporter.stage("publishing", total=1000) as stage:
        for n in range(1, 1001):
            clock.now = n * 0.1  # 100 s in all
            stage.update(n)
    assert out.getvalue().splitlines() == [
        "publishing: started (1,000 events)",
        "publishing: 300/1,000 events (30%), 30 s",
        "publishing: 600/1,000 events (60%), 60 s",
        "publishing: 900/1,000 events (90%), 90 s",
        "publishing: 1,000/1,000 events, done in 100.0 s",
    ]


def test_a_short_stage_in_a_log_is_two_lines_however_often_it_is_updated() -> None:
    console, out = recording(terminal=False)
    reporter = Reporter(console, clock=FakeClock())
    with reporter.stage("detecting", total=50_000) as stage:
        for n in range(50_001):
            stage.update(n)
    assert out.getvalue().splitlines() == [
        "detecting: started (50,000 events)",
        "detecting: 50,000/50,000 events, done in 0.0 s",
    ]


def test_a_stage_without_a_total_counts_and_one_without_a_unit_only_times() -> None:
    console, out = recording(terminal=False)
    clock = FakeClock()
    reporter = Reporter(console, clock=clock)
    with reporter.stage("reading exceptions", unit="records") as stage:
        stage.update(1234)
    with reporter.stage("naive faust agent", unit=""):
        clock.now = 42.0
    assert out.getvalue().splitlines() == [
        "reading exceptions: started",
        "reading exceptions: 1,234 records, done in 0.0 s",
        "naive faust agent: started",
        "naive faust agent: done in 42.0 s",
    ]


def test_a_terminal_gets_a_live_bar_with_the_final_counts() -> None:
    console, out = recording(terminal=True)
    with Reporter(console, clock=FakeClock()) as reporter:
        assert reporter.live
        with reporter.stage("publishing", total=400) as stage:
            for n in range(1, 401):
                stage.update(n, note=f"{n // 2} acknowledged")
        reporter.line("detector  ceiling: 1.0 events/s")
    text = out.getvalue()
    assert "400/400 events, 200 acknowledged" in text
    assert "detector  ceiling: 1.0 events/s" in text
    assert "started" not in text  # no plain lines on a terminal


def test_a_silent_reporter_prints_nothing() -> None:
    with Reporter.silent() as reporter, reporter.stage("publishing", total=10) as stage:
        stage.update(10)
        reporter.line("nothing")
    assert stage.counts() == "10/10 events"


async def test_publishing_progress_counts_every_event_handed_on() -> None:
    console, out = recording(terminal=False)
    reporter = Reporter(console, clock=FakeClock())
    with publishing_stage(reporter, count=250, duration=None) as stage:
        await publish(
            Settings(),
            generate(250, seed=3),
            producer=InstantProducer(),
            batch_size=100,
            progress=lambda s: show_publishing(stage, s),
        )
    assert stage.completed == 250
    assert out.getvalue().splitlines()[-1] == "publishing: 250/250 events, 250 acknowledged, done in 0.0 s"


def test_publishing_for_a_duration_shows_seconds_against_the_duration() -> None:
    console, _ = recording(terminal=False)
    stage = publishing_stage(Reporter(console, clock=FakeClock()), count=None, duration=60.0)
    stats = PublishStats(queued=1500, elapsed_seconds=15.0)
    show_publishing(stage, stats)
    assert (stage.completed, stage.total, stage.counts()) == (15.0, 60.0, "15/60 s, 1,500 events")


def test_simulate_reports_progress_on_stderr_and_keeps_stdout_as_it_was() -> None:
    result = CliRunner().invoke(simulate_app, ["--count", "300", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "generating: started (300 events)"
    assert result.stderr.splitlines()[-1].startswith("generating: 300/300 events, done in ")
    assert result.stdout.startswith("generated 300 events\n")
    assert "generating:" not in result.stdout


def test_the_detector_has_processed_what_its_group_no_longer_lags() -> None:
    assert [processed_count(1000, lag) for lag in (1000, 400, 0)] == [0, 600, 1000]


def test_a_benchmark_figure_is_one_line_with_its_target() -> None:
    figure = {
        "group": "detector",
        "name": "Loopgate detector, one worker",
        "value": 10512.25,
        "unit": "events/s",
        "target": ">= 50000",
        "met": False,
    }
    assert describe(figure) == "detector  Loopgate detector, one worker: 10,512.2 events/s (target >= 50000: not met)"
    untargeted = {
        "group": "latency",
        "name": "exceptions timed",
        "value": 812,
        "unit": "records",
        "target": "",
        "met": None,
    }
    assert describe(untargeted) == "latency  exceptions timed: 812 records"
