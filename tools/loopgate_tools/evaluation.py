"""`loopgate-tools evaluate`: detection quality measured through the real broker and the real detector.

The simulator's ground truth says which rules each event must trigger. The evaluator publishes
the events to fresh topics, runs a `loopgate detector` process on them, reads every record the
detector put on `exceptions`, and scores per rule (true and false positives, false negatives,
precision, recall), plus the audit-sampled share of each source against the sampling formula.
Labelled anomaly scenarios (clustered outliers, level shifts, slow drift: simulator/scenarios.py)
ride along on line items of their own and are scored apart, per scenario.

`--review-load` measures something else: the human time the gates take and the real problems they
catch (review_load.py). It runs the detector's decision in process, needs no broker, and writes
docs/review-load.md with its plot.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import typer

from loopgate.common.kafka import consumer_group_lag, delete_topics_with_prefix, ensure_topics, read_topic
from loopgate.common.settings import Settings, get_settings
from loopgate.detector.config import DetectionConfig, load_detection_config
from loopgate.detector.sampling import sampling_rate
from loopgate_tools.processes import ServiceProcess, free_port, wait_until
from loopgate_tools.progress import Reporter
from loopgate_tools.review_load import DEFAULT_WEEKS, MINUTES_PER_ITEM
from loopgate_tools.review_load import Options as ReviewLoadOptions
from loopgate_tools.simulator.editorial import EDITORIAL_CLIENT, POSTS_PER_WEEK
from loopgate_tools.simulator.generator import CONTENT_GENERATED, SimEvent, generate
from loopgate_tools.simulator.publisher import publish
from loopgate_tools.simulator.scenarios import (
    SCENARIOS,
    ScenarioScore,
    scenario_stream,
    scenario_table,
    score_scenarios,
)

NOT_SCORED = frozenset({"audit_sample", "schema_violation"})


@dataclass
class RuleScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class SampleShare:
    events: int = 0
    sampled: int = 0
    predicted_rate_sum: float = 0.0

    @property
    def share(self) -> float:
        return self.sampled / self.events if self.events else 0.0

    @property
    def predicted(self) -> float:
        return self.predicted_rate_sum / self.events if self.events else 0.0


@dataclass
class Evaluation:
    rules: dict[str, RuleScore] = field(default_factory=lambda: defaultdict(RuleScore))
    sampling: dict[str, SampleShare] = field(default_factory=lambda: defaultdict(SampleShare))
    scenarios: dict[str, ScenarioScore] = field(default_factory=dict)
    events: int = 0
    records: int = 0

    def table(self) -> str:
        lines = [f"{'rule':<20} {'TP':>7} {'FP':>6} {'FN':>6} {'precision':>10} {'recall':>8}"]
        for rule, r in sorted(self.rules.items()):
            lines.append(f"{rule:<20} {r.tp:>7} {r.fp:>6} {r.fn:>6} {r.precision:>10.3f} {r.recall:>8.3f}")
        lines.append("")
        lines.append(f"{'source':<26} {'events':>8} {'sampled':>8} {'share':>8} {'formula':>8} {'rel.err':>8}")
        for source, s in sorted(self.sampling.items()):
            err = abs(s.share - s.predicted) / s.predicted if s.predicted else 0.0
            lines.append(f"{source:<26} {s.events:>8} {s.sampled:>8} {s.share:>8.4f} {s.predicted:>8.4f} {err:>8.3f}")
        if self.scenarios:
            lines += ["", "bid_anomaly on labelled scenarios", scenario_table(self.scenarios)]
        return "\n".join(lines)


def score(events: Iterable[SimEvent], records: Iterable[dict[str, Any]], config: DetectionConfig) -> Evaluation:
    """Compare the detector's records with the ground truth (pure: no Kafka)."""
    result = Evaluation()
    truth: set[tuple[str, str]] = set()
    source_of: dict[str, str] = {}
    sampling = config.sampling
    for ev in events:
        result.events += 1
        source_of[ev.event_id] = ev.topic
        for rule in ev.expected_rules:
            truth.add((ev.event_id, rule))
        confidence = orjson.loads(ev.value)["data"].get("model_confidence")
        share = result.sampling[ev.topic]
        share.events += 1
        share.predicted_rate_sum += sampling_rate(
            sampling.base_rate(ev.topic), confidence, low_confidence=sampling.low_confidence, boost=sampling.boost
        )
    found: set[tuple[str, str]] = set()
    for record in records:
        result.records += 1
        event_id = (record.get("event") or {}).get("id")
        if record["rule_id"] == "audit_sample":
            if event_id in source_of:
                result.sampling[source_of[event_id]].sampled += 1
            continue
        if record["rule_id"] in NOT_SCORED or event_id is None:
            continue
        found.add((event_id, record["rule_id"]))
    for event_id, rule in found | truth:
        s = result.rules[rule]
        if (event_id, rule) in found and (event_id, rule) in truth:
            s.tp += 1
        elif (event_id, rule) in found:
            s.fp += 1
        else:
            s.fn += 1
    return result


def unique_records(records: Iterable[bytes]) -> list[dict[str, Any]]:
    """The detector's records, once per exception_id (at-least-once may repeat one)."""
    seen: dict[str, dict[str, Any]] = {}
    for value in records:
        record = orjson.loads(value)
        seen.setdefault(record["exception_id"], record)
    return list(seen.values())


def run_evaluation(
    base: Settings,
    *,
    count: int,
    anomaly_share: float,
    seed: int,
    workdir: Path,
    scenarios: Sequence[str] = (),
    scenario_line_items: int = 10,
    scenario_events: int = 300,
    timeout: float = 600,
    progress: Reporter | None = None,
) -> Evaluation:
    """Simulate, detect and score on fresh topics of the real broker; removes the topics after.
    `scenarios` adds each named scenario's labelled bids (`scenario_line_items` line items of
    `scenario_events` bids) to the traffic. `progress` shows each stage (generate, publish, detect,
    read back, score)."""
    progress = progress or Reporter.silent()
    prefix = f"eval-{uuid.uuid4().hex[:8]}-"
    settings = base.model_copy(
        update={
            "topic_prefix": prefix,
            "detector_metrics_port": free_port(),
            "detector_data_dir": workdir / "detector",
        }
    )
    config = load_detection_config(settings.detection_config)
    with progress.stage("generating", total=count) as stage:
        events = []
        for event in generate(count, anomaly_share=anomaly_share, seed=seed):
            events.append(event)
            stage.advance()
    points = [
        p
        for name in scenarios
        for p in scenario_stream(name, line_items=scenario_line_items, events_per_line_item=scenario_events, seed=seed)
    ]
    published = [*events, *(p.event for p in points)]
    asyncio.run(ensure_topics(settings))
    detector = ServiceProcess.for_service("detector", settings, workdir).start()
    try:
        with progress.stage("publishing", total=len(published)) as stage:
            asyncio.run(publish(settings, published, rate=None, progress=lambda s: stage.update(s.queued)))
        upstream = [settings.bids_topic, settings.trafficking_topic, settings.content_topic]

        with progress.stage("detecting", total=len(published)) as stage:

            def done() -> bool:
                if not detector.alive():
                    raise RuntimeError(f"the detector exited:\n{detector.log()[-3000:]}")
                lag = asyncio.run(consumer_group_lag(settings, settings.group(settings.detector_app_id), upstream))
                stage.update(processed_count(len(published), lag))
                return lag == 0

            wait_until(done, timeout=timeout, what="the detector to process every event", interval=1.0)
        with progress.stage("reading exceptions", unit="records") as stage:
            records = asyncio.run(read_topic(settings, settings.exceptions_topic))
            stage.update(len(records))
    finally:
        detector.stop()
        asyncio.run(delete_topics_with_prefix(settings, prefix))
    found = unique_records(r.value or b"" for r in records)
    labelled = {p.event.event_id for p in points}
    result = score(events, [r for r in found if (r.get("event") or {}).get("id") not in labelled], config)
    fired = {r["event"]["id"] for r in found if r["rule_id"] == "bid_anomaly" and r["event"]["id"] in labelled}
    result.scenarios = score_scenarios(points, fired)
    result.events, result.records = len(published), len(found)
    return result


def processed_count(published: int, lag: int) -> int:
    """Events the detector group has committed, from its lag on topics holding only `published` events
    (a group that has committed nothing yet lags by all of them)."""
    return max(0, min(published, published - lag))


def evaluate(
    count: int = typer.Option(50_000, help="simulated events"),
    anomaly_share: float = typer.Option(0.05, help="share of events injected to break a rule"),
    seed: int = typer.Option(7),
    scenario: list[str] = typer.Option(
        list(SCENARIOS), help=f"labelled anomaly scenario added to the traffic, repeatable: {', '.join(SCENARIOS)}"
    ),
    scenario_line_items: int = typer.Option(10, help="line items per scenario (0: no scenarios)"),
    review_load: bool = typer.Option(
        False,
        "--review-load",
        help="measure review load instead (no broker): share of events a person sees, recall of real problems, "
        "precision and person-minutes per source, per rule and for the editor case, against review-everything and "
        "a same-size random sample; prints the table and writes --docs/review-load.md and its plot",
    ),
    weeks: int = typer.Option(DEFAULT_WEEKS, help="--review-load: weeks of the editor case"),
    posts_per_week: int = typer.Option(POSTS_PER_WEEK, help="--review-load: the editor case's posts a week"),
    minutes_per_post: float = typer.Option(
        MINUTES_PER_ITEM[CONTENT_GENERATED], help="--review-load: minutes a person spends reviewing one post"
    ),
    client: str = typer.Option(EDITORIAL_CLIENT, help="--review-load: the editor case's client"),
    docs: Path = typer.Option(Path("docs"), help="--review-load: where review-load.md and its plot are written"),
) -> None:
    """Measure per-rule precision and recall, audit-sampled shares and, per labelled anomaly scenario,
    bid_anomaly recall, precision and how soon a level shift stops firing, on the real broker.
    With --review-load: the human time the gates take, and what they catch (no broker)."""
    if review_load:
        try:
            options = ReviewLoadOptions(
                count=count,
                anomaly_share=anomaly_share,
                seed=seed,
                weeks=weeks,
                posts_per_week=posts_per_week,
                minutes_per_post=minutes_per_post,
                client=client,
            )
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        run_review_load(options, docs)
        return
    for name in scenario:
        if name not in SCENARIOS:
            raise typer.BadParameter(f"{name!r}: one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="loopgate-eval-") as tmp, Reporter.stderr() as progress:
        result = run_evaluation(
            get_settings(),
            count=count,
            anomaly_share=anomaly_share,
            seed=seed,
            workdir=Path(tmp),
            scenarios=scenario if scenario_line_items > 0 else (),
            scenario_line_items=scenario_line_items,
            progress=progress,
        )
    typer.echo(f"{result.events} events, {result.records} exception records, {time.monotonic() - started:.0f} s\n")
    typer.echo(result.table())


def run_review_load(options: ReviewLoadOptions, docs: Path) -> None:
    """Measure, print the table, write the doc and its plot (the settings' detection and routes files)."""
    from loopgate.resolution_api.queues.routing import load_routes
    from loopgate_tools.review_load import measure
    from loopgate_tools.review_load_doc import render_table, write_report

    settings = get_settings()
    started = time.monotonic()
    result = measure(options, load_detection_config(settings.detection_config), load_routes(settings.routes_file))
    doc, plot = write_report(result, docs)
    typer.echo(render_table(result))
    typer.echo(f"\nwrote {doc} and {plot} in {time.monotonic() - started:.0f} s")
