"""Prometheus label values are bounded: the `rule` label takes the detector's rule ids only, any
other rule_id a record carries folds into `other`, so no record can grow the number of series."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from loopgate.common import metrics
from loopgate.resolution_api.outcomes.verdicts import count_resolution
from loopgate_schemas.exceptions import RULE_IDS


@pytest.mark.parametrize("rule_id", sorted(RULE_IDS))
def test_a_known_rule_is_its_own_label(rule_id: str) -> None:
    assert metrics.rule_label(rule_id) == rule_id


@pytest.mark.parametrize(
    "rule_id", ["made_up_rule", "BID_OVER_CAP", "bid_over_cap ", "x" * 64, "r\nule", "règle", "", "other"]
)
def test_any_other_rule_folds_into_other(rule_id: str) -> None:
    assert metrics.rule_label(rule_id) == metrics.OTHER_RULE == "other"


def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in REGISTRY.collect() if family.name == name for s in family.samples]


def test_resolutions_of_unknown_rules_are_counted_under_other_and_make_no_series_of_their_own() -> None:
    def resolved_other() -> float:
        return REGISTRY.get_sample_value("loopgate_resolutions_total", {"decision": "confirmed", "rule": "other"}) or 0

    before = resolved_other()
    for n in range(50):
        count_resolution(rule_id=f"rule-{n}-made-up", decision="confirmed", time_to_resolve_seconds=60.0)

    assert resolved_other() == before + 50
    labels = {s[1].get("rule") for s in samples("loopgate_resolutions")} | {
        s[1].get("rule") for s in samples("loopgate_rule_time_to_resolve_seconds")
    }
    assert labels <= RULE_IDS | {"other"}
