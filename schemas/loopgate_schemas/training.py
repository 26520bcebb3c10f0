"""Training data: one decided exception as a self-contained example (a line of the NDJSON export,
`GET /v1/export/training-data` and `loopgate export`), and what of an event counts as model output.

A record is the outcome's data (outcomes.py, version 2) plus the full triggering event, the
platform and the model's output fields picked from it, so the two never disagree on a field.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, Field

from loopgate_schemas.outcomes import Decision, OutcomeData

# Per event type, the `data` fields the automation's model produced (what a human judged): the
# bidder's new bid and its confidence; the generative model's caption, name and confidence.
# Other event types carry no model output (reports and trafficking actions).
MODEL_OUTPUT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "bid.adjusted": ("bid_cpm", "strategy", "model_confidence"),
    "content.generated": ("caption", "model", "model_confidence"),
}


def _data(event: dict[str, Any] | None) -> dict[str, Any]:
    data = (event or {}).get("data")
    return data if isinstance(data, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def model_of(event: dict[str, Any] | None) -> str | None:
    """The model named by the event (`data.model`), if any."""
    return _text(_data(event).get("model"))


def model_confidence_of(event: dict[str, Any] | None) -> float | None:
    """The event's `data.model_confidence`, if it is a number in 0..1."""
    value = _data(event).get("model_confidence")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None
    return float(value)


def platform_of(event: dict[str, Any] | None) -> str | None:
    """The buying or social platform of the event (`data.platform`), if any."""
    return _text(_data(event).get("platform"))


def event_id_of(event: dict[str, Any] | None) -> str | None:
    return _text((event or {}).get("id"))


def model_output_of(event: dict[str, Any] | None) -> dict[str, Any]:
    """The model's output fields of this event (MODEL_OUTPUT_FIELDS), those it carries."""
    event_type = _text((event or {}).get("type")) or ""
    data = _data(event)
    return {name: data[name] for name in MODEL_OUTPUT_FIELDS.get(event_type, ()) if name in data}


class TrainingRecord(OutcomeData):
    """One decided exception as training data: the verdict (decision, reason, correction, resolver),
    what fired (rule, observed, threshold or expected, score) and the full event it fired on."""

    outcome_id: str = Field(
        description="The id of the outcome CloudEvent of this resolution (as published on exception-outcomes)."
    )
    platform: str | None = Field(
        default=None, description="The event's data.platform (buying or social platform); null when it has none."
    )
    model_output: dict[str, Any] = Field(
        default_factory=dict,
        description="The fields of the event's data that the automation's model produced: bid.adjusted: bid_cpm, "
        "strategy, model_confidence; content.generated: caption, model, model_confidence; empty for other types.",
    )
    event: dict[str, Any] | None = Field(
        default=None,
        description="The full triggering CloudEvent as stored (long strings may be cut: see `trimmed`); null when the "
        "message was not a valid event.",
    )
    trimmed: list[str] | None = Field(
        default=None, description="JSON paths inside `event` whose long strings the detector cut; null when none."
    )
    second_review: SecondReview | None = Field(
        default=None,
        description="Added in contract v2 (additive, issue 26): the blind second review of this resolution; null "
        "when it was not chosen for one.",
    )


class SecondReview(BaseModel):
    """Who re-reviewed a resolution blind, what they decided, and the lead's final decision when they differed."""

    status: str = Field(description="pending, agreed, disagreed (a lead decides) or adjudicated")
    reviewer: str | None = Field(description="The second person; null while pending.")
    second_decision: Decision | None = Field(description="Their decision; null while pending.")
    adjudicated: bool = Field(
        description="True when a lead decided the disagreement: `final_decision` is then the gold label (it may "
        "differ from `decision`)."
    )
    final_decision: Decision | None = Field(
        description="The label to train on when the review is settled: the lead's when adjudicated, the shared "
        "decision when the two agreed; null while pending or disagreed."
    )
    adjudicated_by: str | None = Field(description="The lead who decided; null unless adjudicated.")


TrainingRecord.model_rebuild()
