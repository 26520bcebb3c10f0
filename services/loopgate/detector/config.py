"""Detection configuration: every threshold, severity, sampling rate and allow-list.

Loaded from a TOML file (the packaged detection.toml unless LOOPGATE_DETECTION_CONFIG points
elsewhere) into strict models: an unknown or mistyped key refuses to start, naming the key.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

from pydantic import ConfigDict, Field, StrictBool, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml
from loopgate.detector.review_config import ReviewConfig
from loopgate_schemas import topics
from loopgate_schemas.exceptions import Severity

DEFAULT_CONFIG_PATH = Path(__file__).with_name("detection.toml")

Ratio = Annotated[float, Field(gt=0)]
Score = Annotated[float, Field(ge=0, le=1)]


class Thresholds(Strict):
    bid_jump_max_ratio: Ratio = 2.0
    bid_jump_min_ratio: Ratio = 0.5
    pacing_max_ratio: Ratio = 1.3
    brand_safety_min: Score = 0.7
    brand_voice_min: Score = 0.6
    require_https_click_url: bool = True


class ThresholdOverrides(Strict):
    """Any subset of Thresholds, for one client or one platform."""

    bid_jump_max_ratio: Ratio | None = None
    bid_jump_min_ratio: Ratio | None = None
    pacing_max_ratio: Ratio | None = None
    brand_safety_min: Score | None = None
    brand_voice_min: Score | None = None
    require_https_click_url: bool | None = None


class AnomalyConfig(Strict):
    warmup: int = Field(default=20, ge=2)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    variance_alpha: float = Field(default=0.02, gt=0, lt=1)
    z_threshold: float = Field(default=5.0, gt=0)
    min_relative_std: float = Field(default=0.02, ge=0)
    level_shift_after: int = Field(default=8, ge=2)
    trend_alpha: float = Field(default=0.003, ge=0, lt=1)


class ImpactConfig(Strict):
    """What the money-at-risk estimates assume where the event does not say."""

    # A bid event carries no volume: its excess CPM is priced over one hour of this many impressions
    # (0: bid rules carry no impact).
    bid_impressions_per_hour: int = Field(default=10000, ge=0)


class SamplingConfig(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    bids: Score = Field(default=0.01, alias=topics.BIDS)
    trafficking: Score = Field(default=0.02, alias=topics.TRAFFICKING)
    content: Score = Field(default=0.05, alias=topics.CONTENT)
    low_confidence: Score = 0.6
    boost: float = Field(default=9.0, ge=0)
    # Following the verdicts (off: every source stays at its configured base rate).
    adaptive: StrictBool = False
    cap: Score = 0.25  # the highest base rate the verdicts can call for
    weight: float = Field(default=0.1, gt=0, le=1)  # weight of the newest verdict in the wrong share
    tolerance: Score = 0.05  # wrong share up to which the rate stays at the base
    saturation: Score = 0.5  # wrong share at which it reaches the cap
    model_labels: int = Field(default=20, ge=0, le=200)  # models with a gauge label of their own

    @model_validator(mode="after")
    def _adaptive_bounds(self) -> Self:
        if self.saturation <= self.tolerance:
            raise ValueError(f"saturation ({self.saturation}) must be above tolerance ({self.tolerance})")
        highest = max(self.bids, self.trafficking, self.content)
        if self.adaptive and self.cap < highest:
            raise ValueError(f"cap ({self.cap}) is below a source's base rate ({highest})")
        return self

    def base_rate(self, source_topic: str) -> float:
        return {topics.BIDS: self.bids, topics.TRAFFICKING: self.trafficking, topics.CONTENT: self.content}[
            source_topic
        ]

    def base_rates(self) -> dict[str, float]:
        return {source: self.base_rate(source) for source in topics.UPSTREAM}


class DetectionConfig(Strict):
    thresholds: Thresholds = Thresholds()
    caption_limits: dict[str, Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: {"x": 280, "instagram": 2200, "tiktok": 2200, "linkedin": 3000, "facebook": 63206}
    )
    severity: dict[str, Severity] = Field(default_factory=dict)
    anomaly: AnomalyConfig = AnomalyConfig()
    sampling: SamplingConfig = SamplingConfig()
    impact: ImpactConfig = ImpactConfig()
    allowed_domains: dict[str, list[str]] = Field(default_factory=dict)
    clients: dict[str, ThresholdOverrides] = Field(default_factory=dict)
    platforms: dict[str, ThresholdOverrides] = Field(default_factory=dict)
    review: ReviewConfig = ReviewConfig()  # review_config.py: how much a person sees, per source and client

    def severity_of(self, rule_id: str) -> Severity:
        return self.severity.get(rule_id, Severity.MEDIUM)

    @cached_property
    def _allowed_sets(self) -> dict[str, frozenset[str]]:
        return {client: frozenset(d.lower() for d in domains) for client, domains in self.allowed_domains.items()}

    def allowed_domains_for(self, client_id: str) -> frozenset[str] | None:
        """The client's landing-domain allow-list, or None when the client has none configured."""
        return self._allowed_sets.get(client_id)

    def thresholds_for(self, client_id: str, platform: str | None = None) -> Thresholds:
        """Default thresholds, overridden by the platform's, overridden by the client's."""
        key = (client_id, platform)
        cache = self._threshold_cache
        found = cache.get(key)
        if found is None:
            merged = self.thresholds.model_dump()
            for layer in (self.platforms.get(platform or ""), self.clients.get(client_id)):
                if layer is not None:
                    merged.update(layer.model_dump(exclude_none=True))
            found = cache[key] = Thresholds(**merged)
        return found

    @cached_property
    def _threshold_cache(self) -> dict[tuple[str, str | None], Thresholds]:
        return {}


class ConfigError(LoopgateError):
    """The detection configuration cannot be used; the message names the key."""


def load_detection_config(path: Path | None = None) -> DetectionConfig:
    # Keys of the sampling table that are contract topic names are aliases of the fields.
    return load_toml(path or DEFAULT_CONFIG_PATH, DetectionConfig, error=ConfigError)
