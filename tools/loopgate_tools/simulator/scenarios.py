"""Labelled bid streams for the anomaly baselines: clustered outliers, level shifts, slow and fast drift.

`scenario_stream(name, line_items=..., events_per_line_item=..., seed=...)` yields `Point`s: a
`bid.adjusted` event ready to publish (a `SimEvent`) with what it is. Every line item has its own
level and a noise of NOISE_SIGMA of that level (Gaussian, clipped at NOISE_CLIP deviations, so an
ordinary bid is never 6 deviations out); bids never jump (previous == bid) nor reach the cap, so
bid_anomaly is the only rule they can break.

* clustered: after the warm-up, clusters of two or three outliers 6-12 deviations off (either
  side) within CLUSTER_SPAN events, about every 30-60 events. All must fire.
* level-shift: the level moves once or twice by 9-25 deviations (a new normal). The first bid at
  the new level must fire; the next SETTLE_WITHIN - 1 may; later ones must not. Isolated outliers
  at the new level must fire.
* drift: the level moves DRIFT_PER_EVENT (0.05%) per event (20% over 400 events), slower than any
  outlier; isolated outliers on top of it must fire, the drift itself never.
* fast-drift: the same at FAST_DRIFT_PER_EVENT (0.1% per event: 49% over 400 events), where a
  baseline without a trend lags far enough behind to miss outliers on the side it lags.

`score_scenarios(points, fired)` scores a set of fired event ids against the labels (pure), the same
for the detector run through the broker and for the rule run in-process (`fired_in_process`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from loopgate.detector.anomaly import EMPTY, Baseline
from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.anomalies import check_bid_anomaly
from loopgate_schemas import topics
from loopgate_schemas.events import BidAdjusted
from loopgate_tools.simulator.generator import SimEvent

SCENARIOS = ("clustered", "level-shift", "drift", "fast-drift")
NOISE_SIGMA = 0.03  # ordinary spread of a bid, as a share of its level (above the detector's 2% floor)
NOISE_CLIP = 3.0
ANOMALY_SIGMAS = (6.0, 12.0)  # how far an injected outlier is, in noise deviations
CLUSTER_SPAN = 10  # the outliers of one cluster fall within this many events
SHIFT_SIGMAS = (9.0, 25.0)  # a level shift's size, in deviations of the old level (downward at most 20)
SETTLE_WITHIN = 30  # a level shift must stop firing within this many events of it
DRIFT_PER_EVENT = 0.0005
FAST_DRIFT_PER_EVENT = 0.001
WARMUP_EVENTS = 40  # clean bids before anything is injected


@dataclass(frozen=True, slots=True)
class Point:
    event: SimEvent
    scenario: str
    line_item: str
    bid: float
    anomaly: bool  # must fire: an outlier >= 6 deviations off, or the first bid at a new level
    since_shift: int | None = None  # bids since the line item's last level shift (0: the first)


@dataclass
class ScenarioScore:
    anomalies: int = 0
    caught: int = 0
    false_alarms: int = 0  # firings on an ordinary bid (a shifted one SETTLE_WITHIN or more after the shift)
    tolerated: int = 0  # firings on the bids just after a level shift, before it is accepted
    shifts: int = 0
    settle: int = 0  # bids after a level shift until its last firing, at most (0: only the first fired)

    @property
    def recall(self) -> float:
        return self.caught / self.anomalies if self.anomalies else 1.0

    @property
    def precision(self) -> float:
        return self.caught / (self.caught + self.false_alarms) if self.caught + self.false_alarms else 1.0


@dataclass
class _LineItem:
    scenario: str
    index: int
    rng: random.Random
    level: float
    points: list[Point] = field(default_factory=list)

    @property
    def line_item_id(self) -> str:
        return f"li-{self.scenario}-{self.index:02d}"

    def noise(self) -> float:
        return max(-NOISE_CLIP, min(NOISE_CLIP, self.rng.gauss(0.0, 1.0))) * NOISE_SIGMA * self.level

    def add(self, bid: float, *, anomaly: bool = False, since_shift: int | None = None) -> None:
        campaign = f"cmp-{self.scenario}-{self.index:02d}"
        event_id = f"scn-{self.line_item_id}-{len(self.points):05d}"
        data = {
            "campaign_id": campaign,
            "line_item_id": self.line_item_id,
            "client_id": "scenario",
            "platform": "ttd",
            "bid_cpm": bid,
            "previous_bid_cpm": bid,
            "max_bid_cpm": 1e9,
            "currency": "EUR",
            "strategy": "target_cpa",
            "model_confidence": 0.9,
        }
        value = orjson.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": "bidder/scenario",
                "type": "bid.adjusted",
                "time": "2026-11-24T09:15:02Z",
                "subject": campaign,
                "data": data,
            }
        )
        expected = ("bid_anomaly",) if anomaly else ()
        event = SimEvent(topics.BIDS, campaign.encode(), value, event_id, "bid.adjusted", campaign, expected)
        self.points.append(Point(event, self.scenario, self.line_item_id, bid, anomaly, since_shift))

    def clean(self, n: int, *, since_shift: int | None = None, drift: float = 0.0) -> None:
        for i in range(n):
            self.level *= 1 + drift
            self.add(self.level + self.noise(), since_shift=None if since_shift is None else since_shift + i)

    def outlier(self, *, since_shift: int | None = None) -> None:
        k = self.rng.uniform(*ANOMALY_SIGMAS) * NOISE_SIGMA * self.level
        self.add(self.level + k if self.rng.random() < 0.5 else self.level - k, anomaly=True, since_shift=since_shift)


def scenario_stream(name: str, *, line_items: int, events_per_line_item: int, seed: int) -> Iterator[Point]:
    """The scenario's labelled bids, line items interleaved (each line item's bids in order)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    streams = []
    for index in range(line_items):
        rng = random.Random(f"{seed}-{name}-{index}")
        li = _LineItem(name, index, rng, level=rng.uniform(2.0, 20.0))
        li.clean(WARMUP_EVENTS)
        {"clustered": _clustered, "level-shift": _level_shift, "drift": _drift, "fast-drift": _fast_drift}[name](
            li, events_per_line_item
        )
        streams.append(li.points[:events_per_line_item])
    for i in range(max(map(len, streams), default=0)):
        yield from (s[i] for s in streams if i < len(s))


def _clustered(li: _LineItem, n: int) -> None:
    while len(li.points) < n:
        li.clean(li.rng.randint(30, 60))
        at = sorted(li.rng.sample(range(1, CLUSTER_SPAN), li.rng.choice((1, 2))))  # after the first outlier
        li.outlier()
        for gap in (b - a - 1 for a, b in zip([0, *at], at, strict=False)):
            li.clean(gap)
            li.outlier()


def _level_shift(li: _LineItem, n: int) -> None:
    while len(li.points) < n:
        li.clean(li.rng.randint(20, 40) if len(li.points) > WARMUP_EVENTS else 20)
        k = li.rng.uniform(SHIFT_SIGMAS[0], SHIFT_SIGMAS[1] if li.rng.random() < 0.5 else 20.0)
        li.level *= 1 + (k if li.rng.random() < 0.5 else -k) * NOISE_SIGMA
        li.add(li.level + li.noise(), anomaly=True, since_shift=0)
        li.clean(SETTLE_WITHIN - 1, since_shift=1)  # may still fire: the new normal is not accepted yet
        li.clean(li.rng.randint(10, 30))
        li.outlier()  # an outlier against the new normal
        li.clean(li.rng.randint(20, 40))


def _drift(li: _LineItem, n: int, per_event: float = DRIFT_PER_EVENT) -> None:
    direction = 1.0 if li.rng.random() < 0.5 else -1.0
    while len(li.points) < n:
        li.clean(li.rng.randint(40, 80), drift=direction * per_event)
        li.outlier()


def _fast_drift(li: _LineItem, n: int) -> None:
    _drift(li, n, FAST_DRIFT_PER_EVENT)


def fired_in_process(points: Iterable[Point], config: DetectionConfig) -> set[str]:
    """The event ids bid_anomaly fires on, running the rule itself over each line item's bids."""
    baselines: dict[str, Baseline] = defaultdict(lambda: EMPTY)
    fired: set[str] = set()
    for p in points:
        event = BidAdjusted.model_validate_json(p.event.value)
        baselines[p.line_item], firing = check_bid_anomaly(event, baselines[p.line_item], config.anomaly)
        if firing is not None:
            fired.add(p.event.event_id)
    return fired


def score_scenarios(points: Iterable[Point], fired: set[str]) -> dict[str, ScenarioScore]:
    scores: dict[str, ScenarioScore] = defaultdict(ScenarioScore)
    for p in points:
        s = scores[p.scenario]
        hit = p.event.event_id in fired
        if p.anomaly:
            s.anomalies += 1
            s.caught += hit
            s.shifts += p.since_shift == 0
        elif hit and p.since_shift is not None and p.since_shift < SETTLE_WITHIN:
            s.tolerated += 1
            s.settle = max(s.settle, p.since_shift)
        elif hit:
            s.false_alarms += 1
    return dict(scores)


def scenario_table(scores: dict[str, ScenarioScore]) -> str:
    lines = [
        f"{'scenario':<12} {'anomalies':>9} {'caught':>7} {'false':>6} {'recall':>7} {'precision':>9} "
        f"{'shifts':>6} {'settled after':>13}"
    ]
    for name, s in sorted(scores.items()):
        settle = f"{s.settle + 1} events" if s.shifts else "-"
        lines.append(
            f"{name:<12} {s.anomalies:>9} {s.caught:>7} {s.false_alarms:>6} {s.recall:>7.3f} {s.precision:>9.3f} "
            f"{s.shifts:>6} {settle:>13}"
        )
    return "\n".join(lines)


def without_trend(config: DetectionConfig) -> DetectionConfig:
    """`config` with the baselines as they were before the trend (trend_alpha 0)."""
    return config.model_copy(update={"anomaly": config.anomaly.model_copy(update={"trend_alpha": 0.0})})


def scenario_markdown(config: DetectionConfig, *, line_items: int, events_per_line_item: int, seed: int) -> str:
    """docs/detection.md's scenario table: each scenario run in-process through bid_anomaly without the
    trend (before) and with `config`'s (now)."""
    lines = [
        "| scenario | anomalies | recall before | recall now | precision before | precision now "
        "| level shift last fires |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SCENARIOS:
        points = list(
            scenario_stream(name, line_items=line_items, events_per_line_item=events_per_line_item, seed=seed)
        )
        before = score_scenarios(points, fired_in_process(points, without_trend(config)))[name]
        now = score_scenarios(points, fired_in_process(points, config))[name]
        settle = f"event {before.settle + 1} (before), event {now.settle + 1} (now)" if now.shifts else ""
        lines.append(
            f"| {name} | {now.anomalies} | {before.recall:.3f} | {now.recall:.3f} | {before.precision:.3f} "
            f"| {now.precision:.3f} | {settle} |"
        )
    return "\n".join(lines)
