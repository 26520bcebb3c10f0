"""The review-policy settings ([review.<source>.<client>] in detection.toml), read strictly: an unknown
mode, source or key refuses to start, naming it. What each mode does is review_policy.py's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, RootModel, StrictFloat, StrictInt, field_validator, model_validator

from loopgate.common.strict_toml import Strict
from loopgate_schemas import topics
from loopgate_schemas.exceptions import Severity

ANY_CLIENT = "*"

Share = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1, allow_inf_nan=False)]
Minutes = Annotated[StrictInt, Field(ge=0, le=7 * 24 * 60)]


class _Held(Strict):
    """What every policy that holds events for a release decision shares."""

    deadline_margin_minutes: Minutes = 30  # the deadline is the scheduled publish time minus this


class ApproveAll(_Held):
    mode: Literal["approve_all"]


class RiskThreshold(_Held):
    mode: Literal["risk"]
    min_severity: Severity | None = None
    min_amount: Annotated[StrictFloat | StrictInt, Field(ge=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> RiskThreshold:
        if self.min_severity is None and self.min_amount is None:
            raise ValueError("mode 'risk' needs min_severity, min_amount or both")
        return self


class Uncertain(_Held):
    mode: Literal["uncertain"]
    max_confidence: Share  # held when the model's confidence is below this


class Sample(Strict):
    mode: Literal["sample"]
    rate: Share | None = None  # the audit base rate for this client (None: the source's)


class ExceptionsOnly(Strict):
    mode: Literal["exceptions_only"]


Policy = Annotated[ApproveAll | RiskThreshold | Uncertain | Sample | ExceptionsOnly, Field(discriminator="mode")]
HeldPolicy = ApproveAll | RiskThreshold | Uncertain


class SourcePolicies(RootModel[dict[str, Policy]]):
    """One source's policies: client id (or "*") -> policy."""

    @field_validator("root")
    @classmethod
    def _client_ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        for client in value:
            if not client.strip() or not client.isprintable():
                raise ValueError(f"client id {client!r} is empty or holds control characters")
        return value


class ReviewConfig(RootModel[dict[str, SourcePolicies]]):
    """[review.<source topic>.<client id or "*">]: the policy of that client's events on that source."""

    root: dict[str, SourcePolicies] = Field(default_factory=dict)

    @field_validator("root")
    @classmethod
    def _known_sources(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(topics.UPSTREAM))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}: one of {', '.join(topics.UPSTREAM)}")
        return value

    def policy_for(self, source: str, client_id: str) -> Policy | None:
        """The client's policy on `source`, else the source's "*" one, else None (the default)."""
        found = self.root.get(source)
        if found is None:
            return None
        return found.root.get(client_id) or found.root.get(ANY_CLIENT)
