"""A resolved exception as its outcome's data and as a training record: one mapping from the
stored row, used by the outbox (transitions.outcome_of) and by the training-data export, so the
published outcome and the exported line always agree."""

from __future__ import annotations

from typing import Any

from loopgate.resolution_api.db.models import ExceptionRow, SecondReviewRow
from loopgate_schemas.exceptions import Kind, Severity
from loopgate_schemas.outcomes import Decision, FieldChange, OutcomeData, outcome_id_for
from loopgate_schemas.training import (
    SecondReview,
    TrainingRecord,
    event_id_of,
    model_confidence_of,
    model_of,
    model_output_of,
    platform_of,
)


def _fields(row: ExceptionRow) -> dict[str, Any]:
    assert row.resolved_at is not None and row.decision is not None, "only a resolved exception has an outcome"
    event = row.event
    return {
        "exception_id": row.id,
        "rule_id": row.rule_id,
        "source": row.source,
        "decision": Decision(row.decision),
        "resolver": row.resolver or "",
        "reason": row.reason or "",
        "correction": {k: FieldChange.model_validate(v) for k, v in (row.correction or {}).items()},
        "resolved_at": row.resolved_at,
        "time_to_resolve_seconds": row.time_to_resolve_seconds or 0.0,
        "event_id": event_id_of(event),
        "event_type": row.event_type,
        "subject": row.subject,
        "client_id": row.client_id,
        "kind": Kind(row.kind),
        "severity": Severity(row.severity),
        "fingerprint": row.fingerprint,
        "occurrences": row.occurrences,
        "observed": row.observed,
        "threshold": row.threshold,
        "expected": row.expected,
        "score": row.score,
        "model": model_of(event),
        "model_confidence": model_confidence_of(event),
        "detected_at": row.first_seen,
        "queue": row.queue,
    }


def outcome_data_of(row: ExceptionRow) -> OutcomeData:
    """The `data` of the outcome CloudEvent of a resolved exception (contract, Outcome v2)."""
    return OutcomeData(**_fields(row))


def second_review_of(review: SecondReviewRow | None) -> SecondReview | None:
    """A resolution's second review as the training record says it (review/)."""
    if review is None:
        return None
    adjudicated = review.status == "adjudicated"
    final = review.final_decision if adjudicated else review.first_decision if review.status == "agreed" else None
    return SecondReview(
        status=review.status,
        reviewer=review.reviewer,
        second_decision=Decision(review.second_decision) if review.second_decision else None,
        adjudicated=adjudicated,
        final_decision=Decision(final) if final else None,
        adjudicated_by=review.adjudicated_by,
    )


def training_record_of(row: ExceptionRow, review: SecondReviewRow | None = None) -> TrainingRecord:
    """The decided exception as one training example (a line of the export), with its second review."""
    return TrainingRecord(
        second_review=second_review_of(review),
        **_fields(row),
        outcome_id=outcome_id_for(row.id, row.resolution_count),
        platform=platform_of(row.event),
        model_output=model_output_of(row.event),
        event=row.event,
        trimmed=row.trimmed,
    )
