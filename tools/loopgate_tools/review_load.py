"""`loopgate-tools evaluate --review-load`: the human time Loopgate's gates take, and what they catch.

The simulated world's ground truth knows which events were real problems. Every event goes through
the detector's own decision (`Detector.process`: rules, anomaly baselines, audit sampling, exactly
as the worker calls it) and each record through the resolution API's routing (`route_of` over
routes.toml), so what a person sees is what Loopgate would show them. Per source and per rule that
gives the share of events a person sees, the recall of real problems, precision and person-minutes,
against two baselines: a person reviews every event, or a random sample (seeded) of as many events
as the gates showed. The editor case (simulator/editorial.py) is measured the same way, per week and
per queue: the agency's editor (the default queue) and the client's reviewers (`reviewers-<client>`).

How minutes are counted (the assumptions, also written to docs/review-load.md):
* one review item is one event in one queue: a person looks at the event once however many of its
  rules fired there (the API shows them side by side); an event in two queues is two reviews;
* a review takes the minutes of its kind of item (`MINUTES_PER_ITEM`, by event type), whoever does
  it, and a person who looks at an event finds every real problem it has;
* audit samples are review items like any other (human time), and grouping of repeated firings on
  one subject is not counted as a saving (every record is reviewed).

The doc and its plot are a pure function of the options: the same seed writes the same bytes.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from loopgate.detector.config import DetectionConfig
from loopgate.detector.processing import Detector, Stored
from loopgate.resolution_api.queues.routing import RoutingTable, route_of
from loopgate_schemas import topics
from loopgate_tools.simulator.editorial import (
    EDITORIAL_CLIENT,
    POSTS_PER_WEEK,
    LabelledEvent,
    editorial_posts,
    known_clients,
)
from loopgate_tools.simulator.generator import (
    BID_ADJUSTED,
    BUDGET_PACING,
    CONSTRAINT_VIOLATED,
    CONTENT_GENERATED,
    DELIVERY_REPORT,
    PLACEMENT_TRAFFICKED,
    generate,
)

AUDIT = "audit_sample"
# Minutes a person spends on one review item, by kind of item (event type). Assumptions, not measurements.
MINUTES_PER_ITEM: Mapping[str, float] = {
    BID_ADJUSTED: 2.0,  # one bid against its line item's history and the campaign's cap
    BUDGET_PACING: 3.0,  # one campaign's spend so far against its budget and plan
    CONSTRAINT_VIOLATED: 10.0,  # deciding how a campaign's unsatisfiable constraint is resolved
    PLACEMENT_TRAFFICKED: 4.0,  # one placement's flight, click URL, landing domain and creative size
    DELIVERY_REPORT: 2.0,  # one placement's hour of delivery
    CONTENT_GENERATED: 8.0,  # one post read and judged: the editor's 8 minutes in the case
}
CASE_REVIEW_EVERYTHING_MINUTES = 240.0  # the case: 30 posts a week at 8 minutes, reviewed by the editor
CASE_REDESIGNED_MINUTES = 90.0  # the case: what targeted gates brought it to (1.5 hours a week)
DEFAULT_WEEKS = 52
DEFAULT_COUNT = 50_000
NOW = datetime(2026, 11, 23, tzinfo=UTC)  # the records' detected_at: no figure depends on it
SOURCES = topics.UPSTREAM
DOC_NAME, PLOT_NAME = "review-load.md", "review-load.png"
MISSES_LISTED = 25


@dataclass(frozen=True)
class Options:
    """What a review-load run is measured on; refused, naming the option, when it cannot be used."""

    count: int = DEFAULT_COUNT  # events of the agency's simulated stream
    anomaly_share: float = 0.05
    seed: int = 7
    weeks: int = DEFAULT_WEEKS  # weeks of the editor case
    posts_per_week: int = POSTS_PER_WEEK
    minutes_per_post: float = MINUTES_PER_ITEM[CONTENT_GENERATED]
    client: str = EDITORIAL_CLIENT

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"--count: the number of simulated events cannot be negative (got {self.count})")
        if not 0.0 <= self.anomaly_share <= 1.0:
            raise ValueError(f"--anomaly-share: a share within 0..1 (got {self.anomaly_share})")
        if self.weeks <= 0:
            raise ValueError(f"--weeks: the editor case needs at least one week (got {self.weeks})")
        if self.posts_per_week <= 0:
            raise ValueError(
                f"--posts-per-week: a client publishes at least one post a week (got {self.posts_per_week})"
            )
        if not (math.isfinite(self.minutes_per_post) and self.minutes_per_post > 0):
            raise ValueError(f"--minutes-per-post: a positive number of minutes (got {self.minutes_per_post})")
        clients = known_clients()
        if self.client not in clients:
            raise ValueError(f"--client: unknown client {self.client!r}; the simulated ones are {', '.join(clients)}")

    def minutes(self) -> dict[str, float]:
        return {**MINUTES_PER_ITEM, CONTENT_GENERATED: self.minutes_per_post}


@dataclass(frozen=True, slots=True)
class Review:
    """What the gates made of one labelled event: the rules whose records it raised (audit_sample
    included) and the queues those records were routed to (none: no person sees it)."""

    item: LabelledEvent
    rules: frozenset[str]
    queues: frozenset[str]

    @property
    def seen(self) -> bool:
        return bool(self.queues)


@dataclass(frozen=True, slots=True)
class Row:
    """Events in scope, the ones a person sees, real problems among them and the person-minutes."""

    label: str
    events: int
    seen: int
    problems: int  # real problems in scope
    hits: int  # seen items that were real problems (the numerator of recall and of precision)
    minutes: float

    @property
    def share(self) -> float | None:
        return self.seen / self.events if self.events else None

    @property
    def recall(self) -> float | None:
        return self.hits / self.problems if self.problems else None

    @property
    def precision(self) -> float | None:
        return self.hits / self.seen if self.seen else None


@dataclass(frozen=True)
class Comparison:
    """The gates against reviewing everything and a random sample of as many events, over `reviews`."""

    label: str
    gate: Row
    everything: Row
    random_sample: Row
    rules: list[Row]


@dataclass(frozen=True, slots=True)
class Miss:
    """A real problem no person sees: no rule fired on its event and it was not sampled."""

    event_id: str
    subject: str
    problem: str
    detail: str
    why: str


@dataclass(frozen=True)
class EditorCase:
    client: str
    weeks: int
    posts_per_week: int
    minutes_per_post: float
    comparison: Comparison
    minutes_by_queue: dict[str, float]  # under the gates, over every week
    items_by_queue: dict[str, int]  # review items (posts) each queue got, over every week
    missed_by_rule: dict[str, int]  # real problems of each kind whose own rule did not fire
    misses: list[Miss]  # real problems no person saw

    @property
    def client_queue(self) -> str:
        return f"reviewers-{self.client}"

    def per_week(self, minutes: float) -> float:
        return minutes / self.weeks

    @property
    def editor_minutes(self) -> float:
        return sum(m for q, m in self.minutes_by_queue.items() if q != self.client_queue)

    @property
    def client_minutes(self) -> float:
        return self.minutes_by_queue.get(self.client_queue, 0.0)

    def seen_anyway(self, problem: str) -> int:
        """Real problems of this kind its own rule missed that a person saw through another item."""
        return self.missed_by_rule.get(problem, 0) - sum(1 for m in self.misses if m.problem == problem)


@dataclass(frozen=True)
class ReviewLoad:
    options: Options
    sources: list[Comparison]
    agency: Comparison  # every source together
    editor: EditorCase
    minutes: dict[str, float] = field(default_factory=dict)  # per review item, by event type
    stream_hours: float = 0.0  # simulated time the agency's stream covers

    @property
    def stream_weeks(self) -> float:
        return self.stream_hours / (7 * 24)


# --- measuring -------------------------------------------------------------------------------


def gate_reviews(world: Iterable[LabelledEvent], *, config: DetectionConfig, routes: RoutingTable) -> list[Review]:
    """Each event through the detector's decision (one partition, offsets in order, baselines
    carried from event to event as the worker carries them) and each record through routing."""
    detector = Detector(config)
    bid_baselines: dict[str, Stored] = {}
    delivery_baselines: dict[str, Stored] = {}
    reviews = []
    for offset, item in enumerate(world):
        ev = item.event
        outcome = detector.process(
            ev.topic,
            ev.value,
            topic=ev.topic,
            partition=0,
            offset=offset,
            key=ev.key,
            bid_baselines=bid_baselines,
            delivery_baselines=delivery_baselines,
            now=NOW,
        )
        if outcome.rejected is not None:
            raise ValueError(f"{ev.event_id}: the detector refused a simulated event: {outcome.rejected.reason}")
        records = outcome.records
        reviews.append(
            Review(item, frozenset(r.rule_id for r in records), frozenset(route_of(routes, r) for r in records))
        )
    return reviews


def _row(label: str, reviews: Sequence[Review], chosen: Iterable[int], minutes: Mapping[str, float]) -> Row:
    """A baseline's row: each chosen event reviewed once."""
    picked = [reviews[i] for i in chosen]
    return Row(
        label,
        len(reviews),
        len(picked),
        sum(1 for r in reviews if r.item.problems),
        sum(1 for r in picked if r.item.problems),
        sum(minutes[r.item.event.event_type] for r in picked),
    )


def compare(label: str, reviews: Sequence[Review], minutes: Mapping[str, float], *, seed: int) -> Comparison:
    """The gates' row, both baselines' rows and one row per rule (audit_sample last) over `reviews`."""
    problems = sum(1 for r in reviews if r.item.problems)
    gate = Row(
        "Loopgate's gates",
        len(reviews),
        sum(1 for r in reviews if r.seen),
        problems,
        sum(1 for r in reviews if r.seen and r.item.problems),
        sum(minutes[r.item.event.event_type] * len(r.queues) for r in reviews),
    )
    everything = _row("review everything", reviews, range(len(reviews)), minutes)
    rng = random.Random(f"loopgate-review-load-{seed}-{label}")
    sample = sorted(rng.sample(range(len(reviews)), gate.seen))
    random_sample = _row("random sample, same size", reviews, sample, minutes)
    # Per rule, one pass: [firings, real problems of its kind, firings on one, minutes]. A problem of
    # audit_sample's kind is any real problem (sampling is not meant for one kind).
    counts: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for r in reviews:
        kinds = r.item.problems
        for name in kinds:
            counts[name][1] += 1
        if kinds:
            counts[AUDIT][1] += 1
        for name in r.rules:
            c = counts[name]
            c[0] += 1
            c[2] += 1 if (bool(kinds) if name == AUDIT else name in kinds) else 0
            c[3] += minutes[r.item.event.event_type]
    names = sorted(set(counts) - {AUDIT}) + ([AUDIT] if counts[AUDIT][0] else [])
    rules = [Row(name, len(reviews), int(c[0]), int(c[1]), int(c[2]), c[3]) for name in names for c in [counts[name]]]
    return Comparison(label, gate, everything, random_sample, rules)


def why_missed(item: LabelledEvent, problem: str, config: DetectionConfig) -> str:
    """Why the rule meant to catch `problem` did not fire on the event (from the event's own values)."""
    d = orjson.loads(item.event.value)["data"]
    th = config.thresholds_for(d.get("client_id", ""), d.get("platform"))
    if problem == "brand_voice":
        return (
            f"brand_voice_score {d['brand_voice_score']} is not below brand_voice_min {th.brand_voice_min}: "
            "the voice classifier scored an off-voice post as on-voice"
        )
    if problem == "brand_safety":
        return (
            f"brand_safety_score {d['brand_safety_score']} is not below brand_safety_min {th.brand_safety_min}: "
            "the safety classifier scored an unsafe post as safe"
        )
    if problem == "claim_verification" and not d.get("product_claims"):
        return "product_claims is empty: the claim detector did not find the claim the caption states"
    return f"{problem} did not fire on it"


def editor_case(options: Options, config: DetectionConfig, routes: RoutingTable) -> EditorCase:
    posts = editorial_posts(
        weeks=options.weeks,
        seed=options.seed,
        rules=config,
        posts_per_week=options.posts_per_week,
        client_id=options.client,
    )
    return measure_editor_case(posts, options, config, routes)


def measure_editor_case(
    posts: Sequence[LabelledEvent], options: Options, config: DetectionConfig, routes: RoutingTable
) -> EditorCase:
    minutes = options.minutes()
    reviews = gate_reviews(posts, config=config, routes=routes)
    by_queue: dict[str, float] = defaultdict(float)
    items: dict[str, int] = defaultdict(int)
    for r in reviews:
        for queue in r.queues:
            by_queue[queue] += minutes[r.item.event.event_type]
            items[queue] += 1
    missed_by_rule: dict[str, int] = defaultdict(int)
    misses = []
    for r in reviews:
        for problem in sorted(r.item.problems - r.rules):
            missed_by_rule[problem] += 1
            if not r.seen:
                detail = r.item.details.get(problem, "")
                ev = r.item.event
                misses.append(Miss(ev.event_id, ev.subject, problem, detail, why_missed(r.item, problem, config)))
    return EditorCase(
        options.client,
        options.weeks,
        options.posts_per_week,
        options.minutes_per_post,
        compare(f"editor-{options.client}", reviews, minutes, seed=options.seed),
        dict(sorted(by_queue.items())),
        dict(sorted(items.items())),
        dict(sorted(missed_by_rule.items())),
        misses,
    )


def measure(options: Options, config: DetectionConfig, routes: RoutingTable) -> ReviewLoad:
    """The whole measurement: the agency's stream per source, and the editor case."""
    minutes = options.minutes()
    stream = (
        LabelledEvent(ev, frozenset(ev.expected_rules))  # every injected fault is a real problem
        for ev in generate(options.count, anomaly_share=options.anomaly_share, seed=options.seed, rules=config)
    )
    reviews = gate_reviews(stream, config=config, routes=routes)
    by_source: dict[str, list[Review]] = {source: [] for source in SOURCES}
    for r in reviews:
        by_source[r.item.event.topic].append(r)
    sources = [compare(source, by_source[source], minutes, seed=options.seed) for source in SOURCES]
    agency = compare("all sources", reviews, minutes, seed=options.seed)
    hours = (_time(reviews[-1]) - _time(reviews[0])).total_seconds() / 3600 if reviews else 0.0
    return ReviewLoad(options, sources, agency, editor_case(options, config, routes), minutes, hours)


def _time(review: Review) -> datetime:
    return datetime.fromisoformat(orjson.loads(review.item.event.value)["time"].replace("Z", "+00:00"))
