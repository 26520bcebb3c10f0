"""`loopgate-tools simulate`: publish a realistic event stream with injected faults, and its ground truth."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from loopgate.common.settings import Settings, get_settings
from loopgate.detector.config import load_detection_config
from loopgate_tools.progress import Reporter, Stage
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.ground_truth import recording
from loopgate_tools.simulator.publisher import PublishStats, publish

app = typer.Typer(help="Event simulator.", pretty_exceptions_enable=False)


@app.command()
def simulate(
    count: Annotated[
        int | None, typer.Option(min=0, help="Events to publish (default 10000 without --duration).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(min=0.0, help="Publish for this many seconds (instead of, or as well as, --count)."),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.001, help="Events per second (default: as fast as possible).")
    ] = None,
    anomaly_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of events with an injected fault.")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Same seed, same events (and event ids).")] = 7,
    ground_truth: Annotated[
        Path | None, typer.Option("--ground-truth", help="Write one JSON line per published event here.")
    ] = None,
    create_topics: Annotated[bool, typer.Option(help="Create missing Loopgate topics first.")] = True,
    dry_run: Annotated[bool, typer.Option(help="Generate (and write the ground truth) without publishing.")] = False,
) -> None:
    """Publish simulated upstream events (bids, trafficking, content) with injected faults."""

    settings = get_settings()
    if count is None and duration is None:
        count = 10_000
    if dry_run and duration is not None:
        raise typer.BadParameter("--duration needs a broker; use --count with --dry-run")
    rules = load_detection_config(settings.detection_config)
    events = generate(count if count is not None else sys.maxsize, anomaly_share=anomaly_share, seed=seed, rules=rules)
    with ExitStack() as stack:
        if ground_truth is not None:
            events = recording(events, stack.enter_context(ground_truth.open("wb")))
        reporter = stack.enter_context(Reporter.stderr())
        if dry_run:
            stats = PublishStats()
            with reporter.stage("generating", total=count) as stage:
                for event in events:
                    stats.count(event)
                    stats.sent += 1
                    stage.update(stats.queued)
        else:
            with publishing_stage(reporter, count=count, duration=duration) as stage:
                stats = asyncio.run(
                    _publish(
                        settings,
                        events,
                        rate=rate,
                        duration=duration,
                        create=create_topics,
                        progress=lambda s: show_publishing(stage, s),
                    )
                )
    _print_summary(stats, dry_run=dry_run, prefix=settings.topic_prefix, ground_truth=ground_truth)
    if stats.failed:
        typer.echo(f"{stats.failed} events failed: {stats.first_error}", err=True)
        raise typer.Exit(1)


async def _publish(
    settings: Settings,
    events: Iterable[SimEvent],
    *,
    rate: float | None,
    duration: float | None,
    create: bool,
    progress: Callable[[PublishStats], None] | None = None,
) -> PublishStats:
    if create:
        from loopgate.common.kafka import ensure_topics

        await ensure_topics(settings)
    return await publish(settings, events, rate=rate, duration=duration, progress=progress)


def publishing_stage(reporter: Reporter, *, count: int | None, duration: float | None) -> Stage:
    """Published events against --count, or (with only --duration) seconds against the duration."""
    if count is not None:
        return reporter.stage("publishing", total=count)
    return reporter.stage("publishing", total=duration, unit="s")


def show_publishing(stage: Stage, stats: PublishStats) -> None:
    if stage.unit == "s":
        stage.update(min(stats.elapsed_seconds, stage.total or stats.elapsed_seconds), note=f"{stats.queued:,} events")
    else:
        stage.update(stats.queued, note=f"{stats.sent:,} acknowledged")


def _print_summary(stats: PublishStats, *, dry_run: bool, prefix: str, ground_truth: Path | None) -> None:
    verb = "generated" if dry_run else "published"
    timing = "" if dry_run else f" in {stats.elapsed_seconds:.2f} s ({stats.events_per_second:,.0f}/s)"
    where = f" (topic prefix {prefix!r})" if prefix and not dry_run else ""
    typer.echo(f"{verb} {stats.sent:,} events{timing}{where}")
    _print_counts(stats.by_type)
    share = stats.injected / max(1, sum(stats.by_type.values()))
    typer.echo(f"injected faults: {stats.injected:,} ({share:.1%}); expected firings per rule:")
    _print_counts(stats.by_rule)
    if ground_truth is not None:
        typer.echo(f"ground truth: {ground_truth}")


def _print_counts(counts: Counter[str]) -> None:
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        typer.echo(f"  {name:<30} {n:>10,}")


if __name__ == "__main__":
    app()
