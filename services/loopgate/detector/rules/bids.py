"""Rules on bid-management.events: bid over cap, bid jump, overspend, pacing off, constraint."""

from __future__ import annotations

from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.base import Firing, bid_excess_impact, money_at_risk, pct_over
from loopgate_schemas.events import BidAdjusted, BudgetPacing, CampaignConstraintViolated
from loopgate_schemas.exceptions import Kind


def check_bid_adjusted(event: BidAdjusted, config: DetectionConfig) -> list[Firing]:
    d = event.data
    t = config.thresholds_for(d.client_id, d.platform)
    who = f"{d.line_item_id} ({d.client_id}, {d.platform})"
    out: list[Firing] = []
    if d.bid_cpm > d.max_bid_cpm:
        out.append(
            Firing(
                "bid_over_cap",
                Kind.THRESHOLD_BREACH,
                d.line_item_id,
                f"Bid {d.bid_cpm:.2f} {d.currency} CPM on {who} is {pct_over(d.bid_cpm, d.max_bid_cpm)} "
                f"over the campaign cap of {d.max_bid_cpm:.2f}",
                {"bid_cpm": d.bid_cpm, "campaign_id": d.campaign_id},
                threshold={"max_bid_cpm": d.max_bid_cpm},
                score=round(d.bid_cpm / d.max_bid_cpm, 4) if d.max_bid_cpm else None,
                impact=bid_excess_impact(
                    d.bid_cpm - d.max_bid_cpm,
                    d.currency,
                    config.impact.bid_impressions_per_hour,
                    f"(bid_cpm {d.bid_cpm:.2f} - max_bid_cpm {d.max_bid_cpm:.2f})",
                ),
            )
        )
    if d.previous_bid_cpm > 0:
        ratio = d.bid_cpm / d.previous_bid_cpm
        if ratio > t.bid_jump_max_ratio or ratio < t.bid_jump_min_ratio:
            direction = "up" if ratio > 1 else "down"
            out.append(
                Firing(
                    "bid_jump",
                    Kind.THRESHOLD_BREACH,
                    d.line_item_id,
                    f"Bid on {who} jumped {direction} {ratio:.2f}x, from {d.previous_bid_cpm:.2f} to "
                    f"{d.bid_cpm:.2f} {d.currency} CPM (allowed {t.bid_jump_min_ratio}x to {t.bid_jump_max_ratio}x)",
                    {"bid_cpm": d.bid_cpm, "previous_bid_cpm": d.previous_bid_cpm, "ratio": round(ratio, 4)},
                    threshold={"max_ratio": t.bid_jump_max_ratio, "min_ratio": t.bid_jump_min_ratio},
                    score=round(ratio, 4),
                    # Only a jump up spends more; a jump down risks delivery, which has no price here.
                    impact=bid_excess_impact(
                        d.bid_cpm - d.previous_bid_cpm,
                        d.currency,
                        config.impact.bid_impressions_per_hour,
                        f"(bid_cpm {d.bid_cpm:.2f} - previous_bid_cpm {d.previous_bid_cpm:.2f})",
                    )
                    if ratio > 1
                    else None,
                )
            )
    return out


def check_budget_pacing(event: BudgetPacing, config: DetectionConfig) -> list[Firing]:
    d = event.data
    t = config.thresholds_for(d.client_id, d.platform)
    who = f"{d.campaign_id} ({d.client_id}, {d.platform})"
    out: list[Firing] = []
    if d.spend_to_date > d.daily_budget:
        out.append(
            Firing(
                "overspend",
                Kind.THRESHOLD_BREACH,
                d.campaign_id,
                f"Spend {d.spend_to_date:.2f} {d.currency} on {who} on {d.date} is "
                f"{pct_over(d.spend_to_date, d.daily_budget)} over the daily budget of {d.daily_budget:.2f}",
                {"spend_to_date": d.spend_to_date, "date": d.date.isoformat()},
                threshold={"daily_budget": d.daily_budget},
                score=round(d.spend_to_date / d.daily_budget, 4) if d.daily_budget else None,
                impact=money_at_risk(
                    d.spend_to_date - d.daily_budget,
                    d.currency,
                    f"overspend so far on {d.date}: spend_to_date {d.spend_to_date:.2f} - daily_budget "
                    f"{d.daily_budget:.2f}",
                ),
            )
        )
    if d.expected_spend_to_date > 0:
        ratio = d.spend_to_date / d.expected_spend_to_date
        if ratio > t.pacing_max_ratio:
            out.append(
                Firing(
                    "pacing_off",
                    Kind.THRESHOLD_BREACH,
                    d.campaign_id,
                    f"{who} is pacing {ratio:.2f}x even pace: spent {d.spend_to_date:.2f} {d.currency} "
                    f"where {d.expected_spend_to_date:.2f} was expected by now (limit {t.pacing_max_ratio}x)",
                    {"spend_to_date": d.spend_to_date, "ratio": round(ratio, 4)},
                    threshold={"max_ratio": t.pacing_max_ratio},
                    expected={"expected_spend_to_date": d.expected_spend_to_date},
                    score=round(ratio, 4),
                    impact=money_at_risk(
                        d.spend_to_date - d.expected_spend_to_date,
                        d.currency,
                        f"spend ahead of even pace so far on {d.date}: spend_to_date {d.spend_to_date:.2f} - "
                        f"expected_spend_to_date {d.expected_spend_to_date:.2f}",
                    ),
                )
            )
    return out


def check_constraint(event: CampaignConstraintViolated, config: DetectionConfig) -> list[Firing]:
    d = event.data
    return [
        Firing(
            "constraint",
            Kind.POLICY,
            d.campaign_id,
            f"Bidder cannot satisfy constraint '{d.constraint}' on {d.campaign_id} "
            f"({d.client_id}, {d.platform}): {d.detail}",
            {"constraint": d.constraint, "detail": d.detail},
        )
    ]
