"""Online baselines: warm-up, z-scores against history, robustness to outliers (single and clustered),
level shifts accepted within a bounded number of events, slow drift followed without firing."""

from __future__ import annotations

import math
import random

import pytest

from loopgate.detector.anomaly import EMPTY, Baseline, observe

PARAMS = {
    "alpha": 0.05,
    "variance_alpha": 0.02,
    "warmup": 20,
    "z_threshold": 5.0,
    "min_relative_std": 0.02,
    "level_shift_after": 8,
}


def feed(values: list[float], b: Baseline = EMPTY) -> Baseline:
    for v in values:
        b = observe(b, v, **PARAMS).baseline
    return b


def test_nothing_is_scored_before_the_warm_up_is_complete() -> None:
    b = EMPTY
    for v in [5.0] * 19 + [500.0]:
        obs = observe(b, v, **PARAMS)
        assert obs.z is None
        b = obs.baseline
    assert b.count == 20


def test_a_value_far_from_history_scores_in_standard_deviations() -> None:
    rng = random.Random(1)
    b = feed([rng.gauss(10.0, 0.5) for _ in range(200)])
    obs = observe(b, 10.0 + 8 * 0.5, **PARAMS)
    assert obs.z is not None and 6.0 < obs.z < 10.0
    assert abs(obs.expected_mean - 10.0) < 0.3


def test_normal_noise_stays_under_the_threshold() -> None:
    rng = random.Random(2)
    b = feed([rng.gauss(100.0, 5.0) for _ in range(50)])
    flagged = 0
    for _ in range(5000):
        obs = observe(b, rng.gauss(100.0, 5.0), **PARAMS)
        flagged += obs.z is not None and abs(obs.z) > PARAMS["z_threshold"]
        b = obs.baseline
    assert flagged <= 5


def test_one_spike_does_not_blind_the_baseline_to_the_next() -> None:
    rng = random.Random(3)
    b = feed([rng.gauss(10.0, 0.5) for _ in range(100)])
    b = observe(b, 1000.0, **PARAMS).baseline
    second = observe(b, 1000.0, **PARAMS)
    assert second.z is not None and second.z > 5.0


def test_a_huge_value_during_warm_up_never_makes_the_baseline_non_finite() -> None:
    b = feed([5.0, 5.1, 4.9])
    for x in (1e160, 1e308, 5.0, 1e-300, 1.7e308):
        b = observe(b, x, **PARAMS).baseline
        assert math.isfinite(b.mean) and math.isfinite(b.var)


def test_the_baseline_heals_after_a_huge_value_and_scores_again() -> None:
    rng = random.Random(4)
    b = feed([1e160, *(rng.gauss(10.0, 0.5) for _ in range(100))])
    assert abs(b.mean - 10.0) < 0.5
    obs = observe(b, 100.0, **PARAMS)
    assert obs.z is not None and obs.z > 5.0


def test_a_huge_value_after_warm_up_is_an_anomaly_and_the_baseline_stays_finite() -> None:
    b = feed([10.0 + 0.1 * (i % 3) for i in range(40)])
    obs = observe(b, 1e308, **PARAMS)
    assert obs.z is not None and obs.z > 5.0
    assert math.isfinite(obs.baseline.mean) and math.isfinite(obs.baseline.var)


def test_a_non_finite_value_is_never_applied() -> None:
    b = feed([5.0] * 30)
    for x in (math.inf, -math.inf, math.nan):
        assert observe(b, x, **PARAMS).baseline == b
    assert observe(EMPTY, math.nan, **PARAMS).baseline == EMPTY


def fires(b: Baseline, x: float) -> tuple[Baseline, bool]:
    obs = observe(b, x, **PARAMS)
    return obs.baseline, obs.z is not None and abs(obs.z) > PARAMS["z_threshold"]


def noisy(rng: random.Random, level: float, sigma: float) -> float:
    return level + sigma * max(-3.0, min(3.0, rng.gauss(0.0, 1.0)))


@pytest.mark.parametrize("seed", range(40))
def test_two_or_three_outliers_within_ten_events_all_fire(seed: int) -> None:
    rng = random.Random(seed)
    b = feed([noisy(rng, 10.0, 0.3) for _ in range(60)])
    outliers = sorted(rng.sample(range(10), rng.choice((2, 3))))
    for i in range(10):
        if i in outliers:
            b, fired = fires(b, 10.0 + rng.choice((-1, 1)) * rng.uniform(6.0, 12.0) * 0.3)
            assert fired, (i, outliers)
        else:
            b, fired = fires(b, noisy(rng, 10.0, 0.3))
            assert not fired


def test_an_outlier_moves_neither_the_mean_nor_the_variance() -> None:
    b = feed([10.0 + 0.3 * ((i % 5) - 2) for i in range(60)])
    after = observe(b, 20.0, **PARAMS).baseline
    assert (after.mean, after.var, after.run) == (b.mean, b.var, 1)


@pytest.mark.parametrize("seed", range(20))
def test_a_level_shift_fires_first_then_stops_within_thirty_events(seed: int) -> None:
    rng = random.Random(seed)
    b = feed([noisy(rng, 10.0, 0.3) for _ in range(60)])
    new_level = 10.0 * (1 + rng.choice((-1, 1)) * rng.uniform(9.0, 25.0) * 0.03)
    firings = []
    for i in range(200):
        b, fired = fires(b, noisy(rng, new_level, 0.03 * new_level))
        if fired:
            firings.append(i)
    assert firings[0] == 0 and firings[-1] < 30, firings
    b, fired = fires(b, new_level * (1 + 8 * 0.03))  # an outlier against the new normal
    assert fired


def test_a_hundredfold_level_shift_stops_firing_as_quickly() -> None:
    b = feed([10.0 + 0.3 * ((i % 5) - 2) for i in range(60)])
    firings = []
    for i in range(100):
        b, fired = fires(b, 1000.0 + 30 * ((i % 5) - 2))
        if fired:
            firings.append(i)
    assert firings == list(range(PARAMS["level_shift_after"]))


@pytest.mark.parametrize("seed", range(20))
def test_a_slow_drift_is_followed_without_firing(seed: int) -> None:
    rng = random.Random(seed)
    level, step = 10.0, 1 + rng.choice((-1, 1)) * 0.0005  # 0.05% an event: about 20% over 400 events
    b = feed([noisy(rng, level, 0.3) for _ in range(40)])
    for _ in range(400):
        level *= step
        b, fired = fires(b, noisy(rng, level, 0.03 * level))
        assert not fired
    assert abs(b.mean - level) < 0.03 * level
