"""Anomaly rules: a value far outside its entity's own history (see anomaly.py for the method)."""

from __future__ import annotations

from loopgate.detector.anomaly import Baseline, Observation, observe
from loopgate.detector.config import AnomalyConfig
from loopgate.detector.rules.base import Firing, bid_excess_impact
from loopgate_schemas.events import BidAdjusted, DeliveryReport
from loopgate_schemas.exceptions import Kind


def _observe(b: Baseline, x: float, cfg: AnomalyConfig) -> Observation:
    return observe(
        b,
        x,
        alpha=cfg.alpha,
        variance_alpha=cfg.variance_alpha,
        warmup=cfg.warmup,
        z_threshold=cfg.z_threshold,
        min_relative_std=cfg.min_relative_std,
        level_shift_after=cfg.level_shift_after,
        trend_alpha=cfg.trend_alpha,
    )


def check_bid_anomaly(
    event: BidAdjusted, baseline: Baseline, cfg: AnomalyConfig, *, impressions_per_hour: int = 0
) -> tuple[Baseline, Firing | None]:
    """`impressions_per_hour`: the assumed volume a bid above its usual level is priced over (0: no impact)."""
    d = event.data
    obs = _observe(baseline, d.bid_cpm, cfg)
    if obs.z is None or abs(obs.z) <= cfg.z_threshold:
        return obs.baseline, None
    side = "above" if obs.z > 0 else "below"
    firing = Firing(
        "bid_anomaly",
        Kind.ANOMALY,
        d.line_item_id,
        f"Bid {d.bid_cpm:.2f} {d.currency} CPM on {d.line_item_id} ({d.client_id}, {d.platform}) is "
        f"{abs(obs.z):.1f} standard deviations {side} its usual {obs.expected_mean:.2f}",
        {"bid_cpm": d.bid_cpm},
        threshold={"z": cfg.z_threshold},
        expected={
            "mean": round(obs.expected_mean, 4),
            "std": round(obs.expected_std, 4),
            "observations": baseline.count,
        },
        score=round(obs.z, 3),
        # Only a bid above its usual level spends more than it would have.
        impact=bid_excess_impact(
            d.bid_cpm - obs.expected_mean,
            d.currency,
            impressions_per_hour,
            f"(bid_cpm {d.bid_cpm:.2f} - usual {obs.expected_mean:.2f})",
        )
        if obs.z > 0
        else None,
    )
    return obs.baseline, firing


def check_delivery_anomaly(
    event: DeliveryReport, impressions: Baseline, ctr: Baseline, cfg: AnomalyConfig
) -> tuple[Baseline, Baseline, Firing | None]:
    d = event.data
    if d.impressions == 0:  # delivery_stalled's job; a stall must not drag the baseline down
        return impressions, ctr, None
    rate = d.clicks / d.impressions
    imp = _observe(impressions, float(d.impressions), cfg)
    clk = _observe(ctr, rate, cfg)
    worst: tuple[str, Observation, float] | None = None
    for name, obs, value in (("impressions", imp, float(d.impressions)), ("ctr", clk, rate)):
        if obs.z is not None and abs(obs.z) > cfg.z_threshold and (worst is None or abs(obs.z) > abs(worst[1].z or 0)):
            worst = (name, obs, value)
    if worst is None:
        return imp.baseline, clk.baseline, None
    name, obs, value = worst
    side = "above" if (obs.z or 0) > 0 else "below"
    shown = f"{value:,.0f} impressions" if name == "impressions" else f"CTR {value:.3%}"
    usual = f"{obs.expected_mean:,.0f}" if name == "impressions" else f"{obs.expected_mean:.3%}"
    firing = Firing(
        "delivery_anomaly",
        Kind.ANOMALY,
        d.placement_id,
        f"Placement {d.placement_id} ({d.client_id}) had {shown} in the hour of {d.hour.isoformat()}, "
        f"{abs(obs.z or 0):.1f} standard deviations {side} its usual {usual}",
        {"impressions": d.impressions, "clicks": d.clicks, "ctr": round(rate, 6), "metric": name},
        threshold={"z": cfg.z_threshold},
        expected={
            "metric": name,
            "mean": round(obs.expected_mean, 6),
            "std": round(obs.expected_std, 6),
            "observations": (impressions if name == "impressions" else ctr).count,
        },
        score=round(obs.z or 0.0, 3),
    )
    return imp.baseline, clk.baseline, firing
