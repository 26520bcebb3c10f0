"""The anomaly targets on labelled streams (the evaluator's scenarios), with the rule run in-process:
recall >= 0.99 for outliers >= 6 deviations, precision >= 0.95, level shifts accepted within 30 events."""

from __future__ import annotations

import pytest

from loopgate.detector.config import load_detection_config
from loopgate_tools.simulator.scenarios import (
    SCENARIOS,
    SETTLE_WITHIN,
    fired_in_process,
    scenario_stream,
    score_scenarios,
)

CONFIG = load_detection_config()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_meets_the_anomaly_targets(scenario: str) -> None:
    points = list(scenario_stream(scenario, line_items=20, events_per_line_item=400, seed=7))
    score = score_scenarios(points, fired_in_process(points, CONFIG))[scenario]
    assert score.anomalies >= 100
    assert score.recall >= 0.99, score
    assert score.precision >= 0.95, score
    assert score.settle < SETTLE_WITHIN, score
    if scenario == "level-shift":
        assert score.shifts >= 40


def test_the_scenarios_are_deterministic_for_a_seed() -> None:
    first = [p.event.value for p in scenario_stream("level-shift", line_items=2, events_per_line_item=100, seed=3)]
    again = [p.event.value for p in scenario_stream("level-shift", line_items=2, events_per_line_item=100, seed=3)]
    assert first == again and len(first) == 200
