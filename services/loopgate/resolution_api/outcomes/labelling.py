"""Decided exceptions in the formats labelling tools read (issue 26 item 4), both made from the
training record (training.py), so every export says the same thing about a row:

- **Label Studio tasks**: the event as the task's data, the detector's flag (and its score, where
  that is a 0..1 value) as a prediction, the person's decision, reason and correction as an
  annotation, for a project made with LABEL_STUDIO_CONFIG. Label Studio's agreement between the
  prediction's and the annotation's `flag` is the rule's precision (verdicts.py).
- **Hugging Face dataset rows**: one flat row per decided exception, every column of one type on
  every row (the nested values as JSON text), so `datasets.load_dataset("json", ...)` reads any
  export into one stable schema; DATASET_FEATURES names them for the dataset card."""

from __future__ import annotations

from typing import Any, Final

import orjson

from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.outcomes.training import training_record_of
from loopgate.resolution_api.outcomes.verdicts import JUDGED, RIGHT_FLAG
from loopgate_schemas.outcomes import Decision
from loopgate_schemas.training import TrainingRecord

FLAG_RIGHT: Final = "problem"  # the flag was right: confirmed or corrected
FLAG_WRONG: Final = "no_problem"  # the flag was wrong: a false positive
DETECTOR_MODEL_VERSION: Final = "loopgate-detector"

LABEL_STUDIO_CONFIG: Final = f"""<View>
  <Header value="$title"/>
  <Text name="event" value="$event_text"/>
  <Header value="Was the flag right?" size="5"/>
  <Choices name="flag" toName="event" choice="single" showInline="true">
    <Choice value="{FLAG_RIGHT}"/>
    <Choice value="{FLAG_WRONG}"/>
  </Choices>
  <Header value="Decision" size="5"/>
  <Choices name="decision" toName="event" choice="single" showInline="true">
{"".join(f'    <Choice value="{d.value}"/>{chr(10)}' for d in Decision)}  </Choices>
  <TextArea name="reason" toName="event" placeholder="Why" maxSubmissions="1"/>
  <TextArea name="correction" toName="event" placeholder="field: before -> after, one a line"/>
</View>
"""

# label: 1 the flag was right (confirmed, corrected), 0 it was wrong (false_positive), -1 not judged
# (dismissed, escalated: they say nothing about the rule), datasets' own value for "no label".
LABEL_NAMES: Final = (FLAG_WRONG, FLAG_RIGHT)
NOT_JUDGED: Final = -1

# The dataset's columns and their `datasets` types (the card's dataset_info), with what each means.
DATASET_FEATURES: Final[tuple[tuple[str, str, str], ...]] = (
    ("exception_id", "string", "The exception's id in Loopgate."),
    ("outcome_id", "string", "The id of the outcome CloudEvent of this resolution on exception-outcomes."),
    ("rule_id", "string", "The rule that fired (e.g. bid_over_cap)."),
    ("kind", "string", "threshold_breach, anomaly, audit_sample, data_quality or policy."),
    ("severity", "string", "info, low, medium, high or critical."),
    ("source", "string", "The topic of the triggering event."),
    ("client_id", "string", "The agency client; null when the event named none."),
    ("subject", "string", "What the rule fired on (a campaign, a placement, a post)."),
    ("event_type", "string", "The CloudEvents type of the triggering event."),
    ("event_id", "string", "The triggering event's id."),
    ("platform", "string", "The event's data.platform; null when it has none."),
    ("model", "string", "The event's data.model; null when it has none."),
    ("model_confidence", "float64", "The event's data.model_confidence (0..1); null when it has none."),
    ("score", "float64", "The rule's score where it has one (e.g. bid / cap, a z-score); null otherwise."),
    ("label", "class_label", "1 the flag was right, 0 it was wrong, -1 not judged (dismissed, escalated)."),
    ("decision", "string", "The person's verdict: confirmed, corrected, false_positive, dismissed or escalated."),
    ("reason", "string", "The person's reason, free text."),
    ("resolver", "string", "Who decided."),
    ("resolved_at", "string", "When it was decided (RFC 3339, UTC)."),
    ("detected_at", "string", "When the detector first flagged it (RFC 3339, UTC)."),
    ("time_to_resolve_seconds", "float64", "From the first detection to the decision."),
    ("occurrences", "int64", "How many times the rule fired on the subject before the decision."),
    ("queue", "string", "The queue it was worked in."),
    ("text", "string", "The model's text output where the event has one (a post's caption); null otherwise."),
    ("correction_json", "string", 'The correction, field by field, as JSON: {"field": {"before": ..., "after": ...}}.'),
    ("observed_json", "string", "What the rule observed, as JSON; null when nothing."),
    ("threshold_json", "string", "The threshold it was held to, as JSON; null when none."),
    ("expected_json", "string", "An anomaly's expected values, as JSON; null when none."),
    ("model_output_json", "string", "The event's fields the automation's model produced, as JSON."),
    ("event_json", "string", "The full triggering event as stored, as JSON; null when not a valid event."),
)


def label_of(decision: Decision) -> int:
    """The dataset's label of a decision (LABEL_NAMES' index, or NOT_JUDGED)."""
    if decision in RIGHT_FLAG:
        return 1
    return 0 if decision in JUDGED else NOT_JUDGED


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _text(record: TrainingRecord) -> str | None:
    caption = record.model_output.get("caption")
    return caption if isinstance(caption, str) else None


def dataset_row(row: ExceptionRow) -> dict[str, Any]:
    """One decided exception as a row of the Hugging Face dataset (DATASET_FEATURES, in that order)."""
    record = training_record_of(row)
    dumped = record.model_dump(mode="json")
    values: dict[str, Any] = {
        "exception_id": record.exception_id,
        "outcome_id": record.outcome_id,
        "rule_id": record.rule_id,
        "kind": record.kind.value if record.kind else None,
        "severity": record.severity.value if record.severity else None,
        "source": record.source,
        "client_id": record.client_id,
        "subject": record.subject,
        "event_type": record.event_type,
        "event_id": record.event_id,
        "platform": record.platform,
        "model": record.model,
        "model_confidence": record.model_confidence,
        "score": record.score,
        "label": label_of(record.decision),
        "decision": record.decision.value,
        "reason": record.reason,
        "resolver": record.resolver,
        "resolved_at": dumped["resolved_at"],
        "detected_at": dumped["detected_at"],
        "time_to_resolve_seconds": float(record.time_to_resolve_seconds),
        "occurrences": record.occurrences,
        "queue": record.queue,
        "text": _text(record),
        "correction_json": _json(dumped["correction"]),
        "observed_json": _json(record.observed),
        "threshold_json": _json(record.threshold),
        "expected_json": _json(record.expected),
        "model_output_json": _json(record.model_output),
        "event_json": _json(record.event),
    }
    return {name: values[name] for name, _, _ in DATASET_FEATURES}


def _choice(control: str, value: str) -> dict[str, Any]:
    return {"from_name": control, "to_name": "event", "type": "choices", "value": {"choices": [value]}}


def _textarea(control: str, lines: list[str]) -> dict[str, Any]:
    return {"from_name": control, "to_name": "event", "type": "textarea", "value": {"text": lines}}


def _correction_lines(record: TrainingRecord) -> list[str]:
    return [
        f"{name}: {_json(change.before)} -> {_json(change.after)}" for name, change in sorted(record.correction.items())
    ]


def label_studio_task(row: ExceptionRow) -> dict[str, Any]:
    """One decided exception as a Label Studio task for LABEL_STUDIO_CONFIG: data, the detector's
    prediction and the person's annotation."""
    record = training_record_of(row)
    dumped = record.model_dump(mode="json")
    where = f" for {record.client_id}" if record.client_id else ""
    prediction: dict[str, Any] = {
        "model_version": f"{DETECTOR_MODEL_VERSION}:{record.rule_id}",
        "result": [_choice("flag", FLAG_RIGHT)],
    }
    if record.score is not None and 0.0 <= record.score <= 1.0:
        prediction["score"] = record.score  # Label Studio's scores are 0..1; others stay in data.detector_score
    result = [_choice("decision", record.decision.value)]
    label = label_of(record.decision)
    if label != NOT_JUDGED:
        result.insert(0, _choice("flag", LABEL_NAMES[label]))
    if record.reason:
        result.append(_textarea("reason", [record.reason]))
    if record.correction:
        result.append(_textarea("correction", _correction_lines(record)))
    return {
        "data": {
            "title": f"{record.rule_id} on {record.subject or '(no subject)'}{where}",
            "event_text": orjson.dumps(record.event, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
            if record.event is not None
            else "(the message was not a valid event)",
            "exception_id": record.exception_id,
            "rule_id": record.rule_id,
            "kind": dumped["kind"],
            "severity": dumped["severity"],
            "source": record.source,
            "client_id": record.client_id,
            "subject": record.subject,
            "platform": record.platform,
            "model": record.model,
            "detector_score": record.score,
            "observed": record.observed,
            "threshold": record.threshold,
            "expected": record.expected,
            "event": record.event,
        },
        "meta": {
            "outcome_id": record.outcome_id,
            "detected_at": dumped["detected_at"],
            "resolved_at": dumped["resolved_at"],
            "resolver": record.resolver,
            "correction": dumped["correction"],
        },
        "predictions": [prediction],
        "annotations": [
            {
                "result": result,
                "created_at": dumped["resolved_at"],
                "ground_truth": False,
                "was_cancelled": False,
            }
        ],
    }
