"""Which decisions an exception takes: an approval item (kind `approval`) takes a release decision
(publish, publish_corrected, withhold), every other kind a verdict (confirmed, false_positive,
corrected, escalated, dismissed). One check, called by every resolution (single, bulk, console)."""

from __future__ import annotations

from typing import Final

from loopgate_schemas.exceptions import APPROVAL_RULE_ID, Kind
from loopgate_schemas.outcomes import Decision

RELEASE_DECISIONS: Final = (Decision.PUBLISH, Decision.PUBLISH_CORRECTED, Decision.WITHHOLD)
VERDICTS: Final = tuple(d for d in Decision if d not in RELEASE_DECISIONS)


def decisions_of(rule_id: str) -> tuple[Decision, ...]:
    """The decisions a rule's exceptions are resolved with (verdict statistics count these, zeros too)."""
    return RELEASE_DECISIONS if rule_id == APPROVAL_RULE_ID else VERDICTS


def release_problem(kind: str, decision: Decision) -> str | None:
    """Why `decision` cannot resolve an exception of `kind`, or None when it can."""
    approval = kind == Kind.APPROVAL.value
    if approval and decision not in RELEASE_DECISIONS:
        choices = "publish, publish_corrected or withhold"
        return f"an approval item takes a release decision ({choices}), not {decision.value!r}"
    if not approval and decision in RELEASE_DECISIONS:
        return f"decision {decision.value!r} is a release decision: only an approval item (kind 'approval') takes it"
    return None
