"""Deterministic upstream event streams: clean events inside every threshold, plus injected faults.

`generate(count, anomaly_share=..., seed=...)` yields `SimEvent`s (the exact bytes to publish, with
the rules each one must trigger). The same seed gives the same bytes. How the values are built:

* Clean events stay well inside every rule of detection.toml: a bid is its line item's level plus
  noise N(0, 3% of the level) clipped to 2.5 standard deviations (so within +-7.5%, far below the
  campaign cap, which is at least 1.6x the line item's level), its previous bid is the line
  item's last bid when the ratio is close to 1, else a value within 3% of the bid; pacing ratio
  <= min(1.15, 0.9 * pacing_max_ratio) and spend under 97% of the budget; hourly impressions
  N(booked, 5%) clipped the same way, clicks around impressions * CTR; captions under every
  platform limit, safety >= 0.8, voice >= 0.7, no product claims; https click URLs on allowed
  landing domains; creative size == slot size; a flight that ends after it starts. The anomaly
  baselines see nothing beyond 2.5 noise deviations, so a clean event scores |z| < 5.
* An injected event (a share `anomaly_share` of the stream) targets one rule, drawn in shuffled
  rounds over every injectable rule so each one gets its share even in a short stream. Its other
  values are clean, so it triggers exactly its rule, with one documented exception: an overspend
  whose spend / expected spend also exceeds pacing_max_ratio (early in the day) lists both
  `overspend` and `pacing_off`; the ratio is kept at least 5% away from the threshold so the
  expectation never hangs on a rounding.
* Faults that leave the bid or the impressions normal (bid_over_cap lowers the cap carried in
  the event below a normal bid; bid_jump gives a normal bid a previous bid 15-60% past the jump
  ratios) never disturb the anomaly baselines.
* bid_anomaly: a bid 8-12 noise deviations from its level (still under the cap, previous bid
  within 3% so no jump), only on a line item with >= 30 clean bids since its last anomaly.
  delivery_anomaly: impressions 10+ deviations off (10-50% or 150-250% of booked, never 0), the
  CTR left normal, only on a placement with >= 30 clean reports since its last anomaly.
  delivery_stalled (impressions 0) does not count: the detector keeps stalls out of baselines.
* campaign.constraint_violated is always an exception (rule `constraint`), so those events only
  come from injection; `mix` weighs the other five types of the clean stream.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
from bisect import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import get_args

import orjson

from loopgate.detector.config import DetectionConfig, Thresholds, load_detection_config
from loopgate_schemas import topics
from loopgate_schemas.events import SocialPlatform
from loopgate_tools.simulator import captions
from loopgate_tools.simulator.world import (
    BID_NOISE,
    DELIVERY_NOISE,
    IAB_SIZES,
    REGION,
    Campaign,
    Client,
    LineItem,
    Placement,
    World,
    build_world,
)

BID_ADJUSTED = "bid.adjusted"
BUDGET_PACING = "budget.pacing"
CONSTRAINT_VIOLATED = "campaign.constraint_violated"
PLACEMENT_TRAFFICKED = "placement.trafficked"
DELIVERY_REPORT = "delivery.report"
CONTENT_GENERATED = "content.generated"

EVENT_TOPIC: Mapping[str, str] = {
    BID_ADJUSTED: topics.BIDS,
    BUDGET_PACING: topics.BIDS,
    CONSTRAINT_VIOLATED: topics.BIDS,
    PLACEMENT_TRAFFICKED: topics.TRAFFICKING,
    DELIVERY_REPORT: topics.TRAFFICKING,
    CONTENT_GENERATED: topics.CONTENT,
}
RULE_EVENT_TYPE: Mapping[str, str] = {
    "bid_over_cap": BID_ADJUSTED,
    "bid_jump": BID_ADJUSTED,
    "bid_anomaly": BID_ADJUSTED,
    "overspend": BUDGET_PACING,
    "pacing_off": BUDGET_PACING,
    "constraint": CONSTRAINT_VIOLATED,
    "bad_flight": PLACEMENT_TRAFFICKED,
    "click_url": PLACEMENT_TRAFFICKED,
    "domain_not_allowed": PLACEMENT_TRAFFICKED,
    "size_mismatch": PLACEMENT_TRAFFICKED,
    "delivery_stalled": DELIVERY_REPORT,
    "delivery_anomaly": DELIVERY_REPORT,
    "caption_too_long": CONTENT_GENERATED,
    "brand_safety": CONTENT_GENERATED,
    "brand_voice": CONTENT_GENERATED,
    "claim_verification": CONTENT_GENERATED,
}
# Type weights of the clean stream: mostly bids and delivery reports.
DEFAULT_MIX: Mapping[str, float] = {
    BID_ADJUSTED: 0.46,
    DELIVERY_REPORT: 0.32,
    BUDGET_PACING: 0.12,
    CONTENT_GENERATED: 0.06,
    PLACEMENT_TRAFFICKED: 0.04,
}
DEFAULT_START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
CLEAN_STREAK_FOR_ANOMALY = 30  # clean observations an entity needs before an anomaly is injected on it
NOISE_CLIP = 2.5  # clean noise never goes past this many standard deviations
MAX_PENDING = 20  # anomaly rules waiting for a warm entity, per rule

CONSTRAINTS = (
    ("frequency_cap", "frequency cap {n}/day unreachable with audience size {audience}"),
    ("min_daily_budget", "daily budget {budget:.0f} {currency} below the platform minimum for {strategy}"),
    ("audience_too_small", "audience of {audience} users is below the platform minimum of 1000"),
    ("inventory_exclusions", "brand-safety exclusions leave {pct}% of the forecast reach"),
    ("geo_conflict", "target region {geo} is excluded by the client's policy"),
)
GEOS = ("DE-BY", "US-CA", "GB-LND", "FR-IDF", "US-NY", "NL-NH")
CONTENT_MODELS = ("copywriter-v3", "copywriter-v4", "social-llm-2")


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One upstream message, ready to publish, with what the detector must make of it."""

    topic: str  # the contract topic name, without any prefix
    key: bytes
    value: bytes  # the CloudEvent, JSON
    event_id: str
    event_type: str
    subject: str  # the entity id (the message key)
    expected_rules: tuple[str, ...] = ()  # rule ids the event must trigger; () for a clean event
    injected: str | None = None  # the rule this event was built to trigger


# Rules no single event is built to trigger: schema violations come from malformed(), audit
# samples are a deterministic draw on the event id, not a property of the values.
NOT_INJECTED = frozenset({"schema_violation", "audit_sample"})


def injectable_rules(config: DetectionConfig) -> tuple[str, ...]:
    """Every rule of the configuration's [severity] table that an event can be built to trigger."""
    return tuple(r for r in config.severity if r not in NOT_INJECTED)


def generate(
    count: int,
    *,
    anomaly_share: float = 0.05,
    seed: int = 7,
    mix: Mapping[str, float] = DEFAULT_MIX,
    rules: DetectionConfig | None = None,
    start: dt.datetime = DEFAULT_START,
) -> Iterator[SimEvent]:
    """Yield `count` events. `rules` defaults to the packaged detection.toml."""
    if count < 0:
        raise ValueError("count must be >= 0")
    if not 0.0 <= anomaly_share <= 1.0:
        raise ValueError("anomaly_share must be within 0..1")
    return _Stream(seed, rules or load_detection_config(), _check_mix(mix), anomaly_share, start).run(count)


def _check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    for event_type, weight in mix.items():
        if event_type == CONSTRAINT_VIOLATED:
            raise ValueError(f"{CONSTRAINT_VIOLATED} is always an exception: it only comes from injection")
        if event_type not in EVENT_TOPIC:
            raise ValueError(f"unknown event type in mix: {event_type!r}")
        if weight < 0:
            raise ValueError(f"negative weight in mix for {event_type!r}")
    active = {t: float(w) for t, w in mix.items() if w > 0}
    if not active:
        raise ValueError("mix has no event type with a positive weight")
    return active


def _clip(z: float) -> float:
    return NOISE_CLIP if z > NOISE_CLIP else -NOISE_CLIP if z < -NOISE_CLIP else z


_HOUR_PREFIX: dict[int, str] = {}


def _hour_prefix(hour: int) -> str:
    """'YYYY-MM-DDTHH:' of an hour since the epoch (formatting a whole timestamp is the slow part)."""
    prefix = _HOUR_PREFIX.get(hour)
    if prefix is None:
        if len(_HOUR_PREFIX) > 100_000:
            _HOUR_PREFIX.clear()
        tm = time.gmtime(hour * 3600)
        prefix = _HOUR_PREFIX[hour] = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}T{tm.tm_hour:02d}:"
    return prefix


def _iso(t: float) -> str:
    """RFC 3339 in UTC with milliseconds."""
    seconds = int(t)
    hour, rest = divmod(seconds, 3600)
    minute, second = divmod(rest, 60)
    return f"{_hour_prefix(hour)}{minute:02d}:{second:02d}.{int((t - seconds) * 1000):03d}Z"


def _iso_seconds(t: int) -> str:
    hour, rest = divmod(t, 3600)
    minute, second = divmod(rest, 60)
    return f"{_hour_prefix(hour)}{minute:02d}:{second:02d}Z"


class _RuleDeck:
    """Injected rules in shuffled rounds. A rule that cannot be injected yet (an anomaly rule
    before any entity has a baseline) waits in `pending` and goes first once it can."""

    def __init__(self, rng: random.Random, rules: list[str]) -> None:
        self.rng = rng
        self.rules = rules
        self.cards: list[str] = []
        self.pending: list[str] = []

    def draw(self, eligible: Callable[[str], bool]) -> str | None:
        for k, rule in enumerate(self.pending):
            if eligible(rule):
                del self.pending[k]
                return rule
        for _ in range(2 * len(self.rules)):
            if not self.cards:
                self.cards = list(self.rules)
                self.rng.shuffle(self.cards)
            rule = self.cards.pop()
            if eligible(rule):
                return rule
            if self.pending.count(rule) < MAX_PENDING:
                self.pending.append(rule)
        return None


class _Stream:
    def __init__(
        self, seed: int, rules: DetectionConfig, mix: dict[str, float], share: float, start: dt.datetime
    ) -> None:
        self.rng = random.Random(seed)
        self.rules = rules
        self.world: World = build_world(seed, rules)
        self.share = share
        self.seed = seed
        self.id_prefix = f"sim{seed}"
        self.clean_types = list(mix)
        self.clean_cum: list[float] = []
        total = 0.0
        for weight in mix.values():
            total += weight
            self.clean_cum.append(total)
        # About one delivery report per placement and hour of simulated time.
        delivery_share = mix.get(DELIVERY_REPORT, 0.0) / total
        step = 3600.0 * delivery_share / len(self.world.placements) if delivery_share else 30.0
        self.rate = 1.0 / step
        self.t = start.timestamp()
        w = self.world
        self.last_bid = [li.level for li in w.line_items]
        self.bid_streak = [0] * len(w.line_items)
        self.warm_bids: dict[int, None] = {}  # insertion-ordered set: deterministic choice
        first_hour = int(self.t // 3600) * 3600 - 3600
        self.next_hour = [first_hour] * len(w.placements)
        self.delivery_streak = [0] * len(w.placements)
        self.warm_placements: dict[int, None] = {}
        self.allow_listed_placements = [i for i, p in enumerate(w.placements) if p.client.allow_listed]
        social: list[SocialPlatform] = [p for p in get_args(SocialPlatform) if p in rules.caption_limits]
        short = [p for p in social if rules.caption_limits[p] <= 5000]
        self.long_caption_platforms = short or [min(social, key=lambda p: rules.caption_limits[p])]
        self.post_no = 0
        self._thresholds: dict[tuple[str, str], Thresholds] = {}
        self.deck = _RuleDeck(self.rng, self._injectable(mix))
        self.builders: dict[str, Callable[[int, str | None], SimEvent]] = {
            BID_ADJUSTED: self._bid,
            BUDGET_PACING: self._pacing,
            CONSTRAINT_VIOLATED: self._constraint,
            PLACEMENT_TRAFFICKED: self._trafficked,
            DELIVERY_REPORT: self._delivery,
            CONTENT_GENERATED: self._content,
        }

    def _injectable(self, mix: dict[str, float]) -> list[str]:
        active = set(mix)
        if active & {BID_ADJUSTED, BUDGET_PACING}:
            active.add(CONSTRAINT_VIOLATED)
        out = []
        for rule in injectable_rules(self.rules):
            if RULE_EVENT_TYPE.get(rule) not in active:
                continue
            if rule == "domain_not_allowed" and not self.allow_listed_placements:
                continue
            out.append(rule)
        return out

    def _eligible(self, rule: str) -> bool:
        if rule == "bid_anomaly":
            return bool(self.warm_bids)
        if rule == "delivery_anomaly":
            return bool(self.warm_placements)
        return True

    def run(self, count: int) -> Iterator[SimEvent]:
        rng = self.rng
        builders = self.builders
        clean_types, clean_cum = self.clean_types, self.clean_cum
        total = clean_cum[-1]
        share = self.share
        for i in range(count):
            self.t += rng.expovariate(self.rate)
            rule = self.deck.draw(self._eligible) if share and rng.random() < share else None
            if rule is None:
                event_type = clean_types[bisect(clean_cum, rng.random() * total)]
            else:
                event_type = RULE_EVENT_TYPE[rule]
            yield builders[event_type](i, rule)

    # --- helpers ------------------------------------------------------------------------------

    def _thresholds_for(self, client_id: str, platform: str) -> Thresholds:
        key = (client_id, platform)
        th = self._thresholds.get(key)
        if th is None:
            th = self._thresholds[key] = self.rules.thresholds_for(client_id, platform)
        return th

    def _event(
        self,
        i: int,
        event_type: str,
        source: str,
        subject: str,
        data: Mapping[str, object],
        rule: str | None,
        expected: tuple[str, ...] | None = None,
    ) -> SimEvent:
        event_id = f"{self.id_prefix}-{i:09d}"
        value = orjson.dumps(
            {
                "specversion": "1.0",
                "id": event_id,
                "source": source,
                "type": event_type,
                "time": _iso(self.t),
                "subject": subject,
                "data": data,
            }
        )
        if expected is None:
            expected = (rule,) if rule else ()
        return SimEvent(EVENT_TOPIC[event_type], subject.encode(), value, event_id, event_type, subject, expected, rule)

    def _pick(self, cum_weights: tuple[float, ...]) -> int:
        return bisect(cum_weights, self.rng.random() * cum_weights[-1])

    def _pick_warm(self, warm: dict[int, None]) -> int:
        return list(warm)[self.rng.randrange(len(warm))]

    @staticmethod
    def _observe_clean(streak: list[int], warm: dict[int, None], index: int) -> None:
        streak[index] += 1
        if streak[index] == CLEAN_STREAK_FOR_ANOMALY:
            warm[index] = None

    @staticmethod
    def _observe_anomaly(streak: list[int], warm: dict[int, None], index: int) -> None:
        streak[index] = 0
        warm.pop(index, None)

    def _deviations(self, noise: float, low: float) -> tuple[float, float]:
        """(sigma, lowest k) for an anomaly k sigmas away; sigma is the spread the detector measures."""
        anomaly = self.rules.anomaly
        sigma = max(noise, anomaly.min_relative_std)
        low = max(low, anomaly.z_threshold + 3.0)
        return sigma, low

    # --- bid-management.events ----------------------------------------------------------------

    def _bid(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        w = self.world
        index = self._pick_warm(self.warm_bids) if rule == "bid_anomaly" else self._pick(w.line_item_cum_weights)
        li = w.line_items[index]
        campaign = w.campaigns[li.campaign_index]
        th = self._thresholds_for(campaign.client.client_id, campaign.platform)
        cap = campaign.max_bid_cpm
        if rule == "bid_anomaly":
            bid = self._anomalous_bid(li, cap)
            previous = round(bid * rng.uniform(0.97, 1.03), 2)
            self._observe_anomaly(self.bid_streak, self.warm_bids, index)
        else:
            bid = round(li.level + li.noise * _clip(rng.gauss(0.0, 1.0)), 2)
            previous = self._previous_bid(bid, self.last_bid[index], th)
            if rule == "bid_over_cap":
                cap = round(bid * rng.uniform(0.80, 0.95), 2)  # the cap was lowered, the bidder kept bidding
            elif rule == "bid_jump":
                if rng.random() < 0.5:
                    ratio = th.bid_jump_max_ratio * rng.uniform(1.15, 1.6)
                else:
                    ratio = th.bid_jump_min_ratio * rng.uniform(0.5, 0.85)
                previous = round(bid / ratio, 2)
            else:
                self._observe_clean(self.bid_streak, self.warm_bids, index)
        self.last_bid[index] = bid
        data = {
            "campaign_id": campaign.campaign_id,
            "line_item_id": li.line_item_id,
            "client_id": campaign.client.client_id,
            "platform": campaign.platform,
            "bid_cpm": bid,
            "previous_bid_cpm": previous,
            "max_bid_cpm": cap,
            "currency": campaign.client.spec.currency,
            "strategy": li.strategy,
            "model_confidence": round(rng.uniform(0.4, 0.99), 3),
        }
        return self._event(i, BID_ADJUSTED, campaign.source, campaign.campaign_id, data, rule)

    def _anomalous_bid(self, li: LineItem, cap: float) -> float:
        rng = self.rng
        sigma, low = self._deviations(BID_NOISE, 8.0)
        k = rng.uniform(low, low * 1.5) * sigma
        up = round(li.level * (1 + k), 2)
        down = round(li.level * (1 - k), 2)
        if down > 0.05 * li.level and (rng.random() < 0.5 or up >= cap * 0.97):
            return down
        return up

    def _previous_bid(self, bid: float, last: float, th: Thresholds) -> float:
        """The line item's last bid when that is a small step, else a bid within 3% of this one."""
        ratio = bid / last if last else 0.0
        if max(0.75, th.bid_jump_min_ratio * 1.15) < ratio < min(1.33, th.bid_jump_max_ratio / 1.15):
            return last
        return round(bid * self.rng.uniform(0.97, 1.03), 2)

    def _pacing(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        campaign = self.world.campaigns[rng.randrange(len(self.world.campaigns))]
        th = self._thresholds_for(campaign.client.client_id, campaign.platform)
        budget = campaign.daily_budget
        day = int(self.t // 86400) * 86400
        frac = max(1, int((self.t - day) // 900)) / 96  # share of the day at the last quarter hour
        limit = th.pacing_max_ratio
        expected_rules: tuple[str, ...] | None = None
        if rule == "pacing_off":
            ratio = limit * rng.uniform(1.1, 1.5)
            frac = min(frac, 0.95 / ratio)  # keep spend under the budget: only pacing_off
            expected = round(budget * frac, 2)
            spend = round(expected * ratio, 2)
        elif rule == "overspend":
            expected = round(budget * frac, 2)
            spend = budget * rng.uniform(1.02, 1.12)
            if abs(spend / expected / limit - 1) < 0.05:  # never leave pacing_off to a rounding
                spend = expected * limit * 1.1
            spend = round(spend, 2)
            expected_rules = ("overspend", "pacing_off") if spend / expected > limit else ("overspend",)
        else:
            expected = round(budget * frac, 2)
            high = min(1.15, limit * 0.9, 0.97 / frac)
            spend = round(expected * rng.uniform(min(0.8, high * 0.9), high), 2)
        data = {
            "campaign_id": campaign.campaign_id,
            "client_id": campaign.client.client_id,
            "platform": campaign.platform,
            "date": time.strftime("%Y-%m-%d", time.gmtime(day)),
            "daily_budget": budget,
            "spend_to_date": spend,
            "expected_spend_to_date": expected,
            "currency": campaign.client.spec.currency,
        }
        source = f"pacer/{REGION[campaign.client.spec.currency]}"
        return self._event(i, BUDGET_PACING, source, campaign.campaign_id, data, rule, expected_rules)

    def _constraint(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        campaign: Campaign = self.world.campaigns[rng.randrange(len(self.world.campaigns))]
        name, template = CONSTRAINTS[rng.randrange(len(CONSTRAINTS))]
        detail = template.format(
            n=rng.randint(2, 6),
            audience=rng.randrange(200, 1000, 10),
            budget=campaign.daily_budget * rng.uniform(0.05, 0.2),
            currency=campaign.client.spec.currency,
            strategy=self.world.line_items[campaign.line_items[0]].strategy,
            pct=rng.randint(3, 15),
            geo=rng.choice(GEOS),
        )
        data = {
            "campaign_id": campaign.campaign_id,
            "client_id": campaign.client.client_id,
            "platform": campaign.platform,
            "constraint": name,
            "detail": detail,
        }
        return self._event(i, CONSTRAINT_VIOLATED, campaign.source, campaign.campaign_id, data, rule, ("constraint",))

    # --- trafficking.events -------------------------------------------------------------------

    def _trafficked(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        w = self.world
        if rule == "domain_not_allowed":
            index = self.allow_listed_placements[rng.randrange(len(self.allow_listed_placements))]
        else:
            index = rng.randrange(len(w.placements))
        p = w.placements[index]
        th = self._thresholds_for(p.client.client_id, "")  # trafficking events carry no platform
        start = (int(self.t // 86400) + rng.randint(0, 14)) * 86400
        if rule == "bad_flight":
            end = start - rng.randint(0, 30) * 86400  # ends before (or when) it starts
        else:
            end = start + rng.randint(7, 60) * 86400 - 1
        domain = self._bad_domain(p.client) if rule == "domain_not_allowed" else rng.choice(p.client.landing_domains)
        query = f"utm_source={p.ad_server}&utm_medium=display&utm_campaign={p.order_id}"
        click_url = f"https://{domain}/{p.landing_path}?{query}"
        if rule == "click_url":
            click_url = (
                click_url.replace("https://", "http://", 1)
                if (th.require_https_click_url and rng.random() < 0.6)
                else ""
            )
        creative = p.slot
        if rule == "size_mismatch":
            others = [s for s in IAB_SIZES if s != p.slot]
            creative = others[rng.randrange(len(others))]
        creative_id = p.creative_ids[rng.randrange(len(p.creative_ids))]
        pixels = [f"https://pixel.{p.ad_server}.example/p?cr={creative_id}&n={k}" for k in range(rng.randint(0, 2))]
        data = {
            "placement_id": p.placement_id,
            "order_id": p.order_id,
            "client_id": p.client.client_id,
            "creative_id": creative_id,
            "ad_server": p.ad_server,
            "flight_start": _iso_seconds(start),
            "flight_end": _iso_seconds(end),
            "click_url": click_url,
            "landing_domain": domain,
            "creative_width": creative[0],
            "creative_height": creative[1],
            "slot_width": p.slot[0],
            "slot_height": p.slot[1],
            "tracking_pixels": pixels,
        }
        return self._event(i, PLACEMENT_TRAFFICKED, f"adserver/{p.ad_server}", p.placement_id, data, rule)

    def _bad_domain(self, client: Client) -> str:
        cid = client.client_id
        candidates = [f"{cid}-deals.example", "promo-hub.example", f"{cid}.example.net", "bit.ly"]
        allowed = set(client.landing_domains)
        choices = [d for d in candidates if d not in allowed]
        return choices[self.rng.randrange(len(choices))]

    def _report_hour(self, index: int) -> int:
        """The next hour this placement reports, never past the last complete hour."""
        last_complete = int(self.t // 3600) * 3600 - 3600
        hour = self.next_hour[index]
        if hour < last_complete - 3 * 3600:
            hour = last_complete  # the ad server skipped ahead; missed hours are not restated
        elif hour > last_complete:
            hour = last_complete  # a restatement of the last hour
        self.next_hour[index] = hour + 3600
        return hour

    def _delivery(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        w = self.world
        if rule == "delivery_anomaly":
            index = self._pick_warm(self.warm_placements)
        else:
            index = self._pick(w.placement_cum_weights)
        p: Placement = w.placements[index]
        booked = p.booked_per_hour
        if rule == "delivery_stalled":
            impressions = clicks = 0  # not an observation: stalls stay out of the baselines
        else:
            if rule == "delivery_anomaly":
                factor = self._anomalous_delivery_factor()
                self._observe_anomaly(self.delivery_streak, self.warm_placements, index)
            else:
                factor = 1.0 + DELIVERY_NOISE * _clip(rng.gauss(0.0, 1.0))
                self._observe_clean(self.delivery_streak, self.warm_placements, index)
            impressions = max(1, round(booked * factor))
            mean_clicks = impressions * p.ctr
            clicks = max(0, round(mean_clicks + math.sqrt(mean_clicks) * _clip(rng.gauss(0.0, 1.0))))
        data = {
            "placement_id": p.placement_id,
            "order_id": p.order_id,
            "client_id": p.client.client_id,
            "hour": _iso_seconds(self._report_hour(index)),
            "impressions": impressions,
            "clicks": clicks,
            "booked_impressions_per_hour": booked,
        }
        return self._event(i, DELIVERY_REPORT, f"adserver/{p.ad_server}", p.placement_id, data, rule)

    def _anomalous_delivery_factor(self) -> float:
        rng = self.rng
        sigma, low = self._deviations(DELIVERY_NOISE, 10.0)
        deepest = 0.9 / sigma  # never 0 impressions: that is delivery_stalled
        if low < deepest and rng.random() < 0.5:
            return 1.0 - rng.uniform(low, min(low * 1.8, deepest)) * sigma
        return 1.0 + rng.uniform(low, low * 3.0) * sigma

    # --- content-pipeline.events --------------------------------------------------------------

    def _content(self, i: int, rule: str | None) -> SimEvent:
        rng = self.rng
        client = self.world.clients[rng.randrange(len(self.world.clients))]
        platform: str
        if rule == "caption_too_long":
            platform = self.long_caption_platforms[rng.randrange(len(self.long_caption_platforms))]
        else:
            platform = client.spec.social_platforms[rng.randrange(len(client.spec.social_platforms))]
        th = self._thresholds_for(client.client_id, platform)
        limit = self.rules.caption_limits.get(platform, 63206)
        safety = round(rng.uniform(min(max(0.8, th.brand_safety_min + 0.1), 0.99), 1.0), 3)
        voice = round(rng.uniform(min(max(0.7, th.brand_voice_min + 0.1), 0.99), 1.0), 3)
        claims: list[str] = []
        if rule == "caption_too_long":
            caption = captions.long_caption(rng, client, limit + rng.randint(1, 400))
        elif rule == "brand_safety":
            safety = round(
                rng.uniform(0.02, th.brand_safety_min - 0.1) if th.brand_safety_min > 0.15 else th.brand_safety_min / 2,
                3,
            )
            caption = captions.risky_caption(rng, client)
        elif rule == "brand_voice":
            voice = round(
                rng.uniform(0.05, th.brand_voice_min - 0.1) if th.brand_voice_min > 0.15 else th.brand_voice_min / 2,
                3,
            )
            caption = captions.off_voice_caption(rng, client)
        elif rule == "claim_verification":
            claims = rng.sample(client.spec.claims, k=rng.randint(1, min(2, len(client.spec.claims))))
            caption = captions.claim_caption(rng, client, claims)
        else:
            caption = captions.clean_caption(rng, client)
        if rule != "caption_too_long" and len(caption) >= limit:
            caption = caption[: limit - 1]
        self.post_no += 1
        content_id = f"post-{self.seed}{self.post_no:07d}"
        data = {
            "content_id": content_id,
            "client_id": client.client_id,
            "platform": platform,
            "caption": caption,
            "model": CONTENT_MODELS[rng.randrange(len(CONTENT_MODELS))],
            "model_confidence": round(rng.uniform(0.35, 0.99), 3),
            "brand_voice_score": voice,
            "brand_safety_score": safety,
            "product_claims": claims,
        }
        return self._event(i, CONTENT_GENERATED, "contentgen/social", content_id, data, rule)
