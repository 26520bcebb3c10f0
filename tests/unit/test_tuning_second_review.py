"""`loopgate tune` reads a second review's settled label: the lead's adjudicated (gold) decision, or
the shared one; a disagreement the lead has not decided yet is no label at all."""

from __future__ import annotations

from typing import Any

import pytest

from loopgate.detector.config import load_detection_config
from loopgate.detector.tuning import verdict_from_json
from loopgate_schemas.outcomes import Decision
from loopgate_tools.simulator.verdicts import simulated_verdict_history

CONFIG = load_detection_config()


def _row(second_review: dict[str, Any] | None) -> dict[str, Any]:
    row = dict(simulated_verdict_history(CONFIG)[0])
    row["decision"] = "false_positive"
    row["second_review"] = second_review
    return row


def _review(status: str, second: str | None, final: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "reviewer": "second" if second else None,
        "second_decision": second,
        "adjudicated": status == "adjudicated",
        "final_decision": final,
        "adjudicated_by": "lead" if status == "adjudicated" else None,
    }


@pytest.mark.parametrize(
    ("review", "decision"),
    [
        (None, Decision.FALSE_POSITIVE),  # not reviewed: the resolution's own decision
        (_review("pending", None, None), Decision.FALSE_POSITIVE),  # not yet checked: still the resolver's
        (_review("agreed", "false_positive", "false_positive"), Decision.FALSE_POSITIVE),
        (_review("adjudicated", "confirmed", "confirmed"), Decision.CONFIRMED),  # the lead's gold label wins
    ],
)
def test_tune_takes_the_settled_label(review: dict[str, Any] | None, decision: Decision) -> None:
    verdict = verdict_from_json(_row(review))
    assert verdict is not None and verdict.decision is decision


def test_tune_leaves_out_a_disagreement_the_lead_has_not_decided() -> None:
    assert verdict_from_json(_row(_review("disagreed", "confirmed", None))) is None
