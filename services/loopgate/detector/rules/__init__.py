"""Detection rules, one module per source. Each rule is a pure function of an event and the
configuration (anomaly rules also take and return the entity's baseline)."""

from __future__ import annotations

from collections.abc import Callable

from loopgate.detector.config import DetectionConfig
from loopgate.detector.rules.base import Firing
from loopgate.detector.rules.bids import check_bid_adjusted, check_budget_pacing, check_constraint
from loopgate.detector.rules.content import check_content_generated
from loopgate.detector.rules.trafficking import check_delivery_report, check_placement_trafficked
from loopgate_schemas.events import CloudEvent

ThresholdRule = Callable[[CloudEvent, DetectionConfig], list[Firing]]

THRESHOLD_RULES: dict[str, ThresholdRule] = {
    "bid.adjusted": check_bid_adjusted,  # type: ignore[dict-item]
    "budget.pacing": check_budget_pacing,  # type: ignore[dict-item]
    "campaign.constraint_violated": check_constraint,  # type: ignore[dict-item]
    "placement.trafficked": check_placement_trafficked,  # type: ignore[dict-item]
    "delivery.report": check_delivery_report,  # type: ignore[dict-item]
    "content.generated": check_content_generated,  # type: ignore[dict-item]
}


def evaluate_threshold_rules(event: CloudEvent, config: DetectionConfig) -> list[Firing]:
    return THRESHOLD_RULES[event.type](event, config)


__all__ = ["THRESHOLD_RULES", "Firing", "evaluate_threshold_rules"]
