"""What a rule returns when it fires: everything the exception record needs but the event."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopgate_schemas.exceptions import Impact, Kind

BASIS_LIMIT = 500  # Impact.basis max_length


@dataclass(frozen=True, slots=True)
class Firing:
    rule_id: str
    kind: Kind
    subject: str
    summary: str
    observed: dict[str, Any]
    threshold: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    impact: Impact | None = None  # the money at risk, where the rule can estimate it honestly
    deadline: datetime | None = None  # an approval item's: when its release decision stops being useful


def money_at_risk(amount: float, currency: str, basis: str) -> Impact | None:
    """An Impact of `amount` (rounded to cents), or None when there is nothing at risk to report
    (zero, negative, or too large to be a number)."""
    if not math.isfinite(amount) or amount <= 0:
        return None
    rounded = round(amount, 2)
    if rounded <= 0 or not math.isfinite(rounded):
        return None
    # Built without validation on the hot path: the currency comes from a validated event.
    return Impact.model_construct(amount=rounded, currency=currency, basis=basis[:BASIS_LIMIT])


def bid_excess_impact(excess_cpm: float, currency: str, impressions_per_hour: int, what: str) -> Impact | None:
    """`excess_cpm` (a CPM above what it should be) times an assumed hour of volume: the event
    carries no volume, so the hour's impressions are configuration (impact.bid_impressions_per_hour)."""
    if impressions_per_hour <= 0:
        return None
    return money_at_risk(
        excess_cpm / 1000 * impressions_per_hour,
        currency,
        f"{what} / 1000 x {impressions_per_hour} impressions: one hour at an assumed {impressions_per_hour} "
        "impressions an hour (impact.bid_impressions_per_hour; the event carries no volume)",
    )


def pct_over(value: float, limit: float) -> str:
    return f"{(value / limit - 1) * 100:.0f}%" if limit else "inf%"
