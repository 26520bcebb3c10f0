"""What each resolution decision means, in the words the console and `loopgate ops` show, and
how the `escalated` decision differs from the `escalate` action (they are easy to confuse):

- the `escalate` action keeps the exception open (status `escalated`) and tells the escalation
  receivers: "I need help with this";
- the `escalated` decision resolves it for good: "this was handed to someone outside Loopgate".
"""

from __future__ import annotations

from loopgate_schemas.outcomes import Decision

DECISION_MEANINGS: dict[Decision, str] = {
    Decision.CONFIRMED: "the flag was right",
    Decision.CORRECTED: "right flag, and you fixed the event's data (say what changed)",
    Decision.FALSE_POSITIVE: "the rule should not have fired (needs a reason)",
    Decision.DISMISSED: "not worth acting on: duplicate, test traffic, handled elsewhere (needs a reason)",
    Decision.ESCALATED: "handed to someone outside Loopgate: resolves it for good (to keep it open and ask "
    "for help, use the escalate action instead)",
    Decision.PUBLISH: "approval items: release the output as it is",
    Decision.PUBLISH_CORRECTED: "approval items: release your corrected version (say what changed, field by field)",
    Decision.WITHHOLD: "approval items: never release it",
}

ESCALATE_ACTION_HELP = (
    "Escalate: keep it open (status escalated) and tell the escalation receivers, saying why. "
    "Not the `escalated` decision of resolve, which closes it as handed outside Loopgate."
)


def decision_label(decision: Decision) -> str:
    """A decision as a choice in a form: its name, then what it means."""
    return f"{decision.value}: {DECISION_MEANINGS[decision]}"


def decisions_help() -> str:
    """The resolve command's --decision help: each decision and what it means."""
    return "; ".join(decision_label(d) for d in Decision)
