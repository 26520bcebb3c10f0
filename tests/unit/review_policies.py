"""A detection configuration with review policies of every kind, for the tests that run the whole
simulated stream through the detector (every rule among the records, approval_gate included)."""

from __future__ import annotations

from loopgate.detector.config import DetectionConfig
from loopgate.detector.review_config import ReviewConfig
from loopgate_schemas import topics

POLICIES = {
    topics.CONTENT: {"*": {"mode": "uncertain", "max_confidence": 0.5, "deadline_margin_minutes": 15}},
    topics.BIDS: {"*": {"mode": "risk", "min_severity": "critical"}},
    topics.TRAFFICKING: {"*": {"mode": "exceptions_only"}},
}


def with_review_policies(config: DetectionConfig) -> DetectionConfig:
    raw = config.model_dump(by_alias=True, mode="json")
    raw["review"] = ReviewConfig.model_validate(POLICIES).model_dump(mode="json")
    return DetectionConfig.model_validate(raw)
