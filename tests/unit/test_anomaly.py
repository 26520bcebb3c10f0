"""Online baselines: warm-up, z-scores against history, robustness to outliers (single and clustered),
level shifts accepted within a bounded number of events, slow and fast drift followed without firing
(the trend), outliers on a fast drift caught where the baseline without a trend misses them."""

from __future__ import annotations

import math
import random

import pytest

from loopgate.detector.anomaly import EMPTY, Baseline, is_finite_state, observe

PARAMS = {
    "alpha": 0.05,
    "variance_alpha": 0.02,
    "warmup": 20,
    "z_threshold": 5.0,
    "min_relative_std": 0.02,
    "level_shift_after": 8,
    "trend_alpha": 0.003,
}
NO_TREND = {**PARAMS, "trend_alpha": 0.0}  # the baseline before the trend was kept


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


def test_an_outlier_moves_neither_the_trend_nor_the_variance_and_the_mean_only_along_the_trend() -> None:
    b = feed([10.0 + 0.3 * ((i % 5) - 2) for i in range(60)])
    after = observe(b, 20.0, **PARAMS).baseline
    assert (after.mean, after.trend, after.var, after.run) == (b.mean + b.trend, b.trend, b.var, 1)


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


def drift_with_outliers(seed: int, per_event: float) -> tuple[list[float], set[int]]:
    """300 bids climbing `per_event` an event after 40 flat ones, with an outlier 6 deviations below the
    level (the side a lagging baseline is on) every 50 events: the values and the outliers' positions."""
    rng = random.Random(seed)
    level, values, outliers = 10.0, [noisy(rng, 10.0, 0.3) for _ in range(40)], set()
    for i in range(300):
        level *= 1 + per_event
        if i % 50 == 49:
            outliers.add(len(values))
            values.append(level * (1 - 6 * 0.03))
        else:
            values.append(noisy(rng, level, 0.03 * level))
    return values, outliers


def fired_at(values: list[float], params: dict[str, float]) -> set[int]:
    b, fired = EMPTY, set()
    for i, v in enumerate(values):
        obs = observe(b, v, **params)  # type: ignore[arg-type]
        b = obs.baseline
        if obs.z is not None and abs(obs.z) > params["z_threshold"]:
            fired.add(i)
    return fired


@pytest.mark.parametrize("seed", range(10))
def test_on_a_fast_drift_the_trend_catches_the_outliers_the_baseline_without_it_misses(seed: int) -> None:
    values, outliers = drift_with_outliers(seed, 0.001)  # 0.1% an event
    assert fired_at(values, PARAMS) == outliers  # every outlier, and nothing else
    missed = outliers - fired_at(values, NO_TREND)
    assert missed, "the stream no longer shows the lag: the test cannot tell the trend helps"


def test_without_the_trend_the_lag_grows_with_the_drift_and_the_trend_removes_it() -> None:
    values, outliers = drift_with_outliers(1, 0.001)
    clean = [v for i, v in enumerate(values) if i not in outliers]
    with_trend, without = EMPTY, EMPTY
    for v in clean:
        with_trend = observe(with_trend, v, **PARAMS).baseline  # type: ignore[arg-type]
        without = observe(without, v, **NO_TREND).baseline  # type: ignore[arg-type]
    level = 10.0 * 1.001**300  # where the last outlier's level was: the clean values stop there
    assert without.trend == 0.0 and level - without.mean > 0.01 * level  # about (1 - alpha) / alpha events behind
    assert abs(with_trend.mean + with_trend.trend - level) < 0.01 * level
    assert 0.5 * 0.001 * level < with_trend.trend < 2 * 0.001 * level


@pytest.mark.parametrize("seed", range(20))
def test_a_fast_drift_is_followed_without_firing(seed: int) -> None:
    rng = random.Random(seed)
    level, step = 10.0, 1 + rng.choice((-1, 1)) * 0.002  # 0.2% an event: x2.2 or x0.45 over 400 events
    b = feed([noisy(rng, level, 0.3) for _ in range(40)])
    for _ in range(400):
        level *= step
        b, fired = fires(b, noisy(rng, level, 0.03 * level))
        assert not fired
    assert abs(b.mean + b.trend - level) < 0.03 * level


def observe_before_the_trend(b: Baseline, x: float) -> tuple[Baseline, float | None]:
    """The baseline as it was before the trend (git: c8da37d), for the finite values it was given."""
    a, va, warmup, zt, floor, shift_after = 0.05, 0.02, 20, 5.0, 0.02, 8
    if b.count == 0:
        return Baseline(1, x, 0.0), None
    std = max(math.sqrt(b.var) if b.var > 0 else 0.0, abs(b.mean) * floor, 1e-9)
    z = (x - b.mean) / std
    if b.count < warmup:
        n = b.count + 1
        delta = x - b.mean
        mean = b.mean + delta / n
        var = (b.var * (b.count - 1) + delta * (x - mean)) / (n - 1) if n > 1 else 0.0
        return Baseline(n, mean, var), None
    if abs(z) > zt:
        side = 1 if z > 0 else -1
        run = b.run + side if b.run * side > 0 else side
        run_mean = b.run_mean + (x - b.run_mean) / abs(run) if abs(run) > 1 else x
        if abs(run) >= shift_after:
            scale = max(0.01, min(100.0, (run_mean / b.mean) ** 2)) if b.mean > 0 and run_mean > 0 else 1.0
            return Baseline(b.count + 1, run_mean, b.var * scale), z
        return Baseline(b.count + 1, b.mean, b.var, run, run_mean), z
    delta = x - b.mean
    mean = b.mean + a * delta
    var = (1 - va) * (b.var + va * delta * delta)
    run = b.run - (b.run > 0) + (b.run < 0)
    return Baseline(b.count + 1, mean, var, run, b.run_mean if run else 0.0), z


@pytest.mark.parametrize("seed", range(10))
def test_with_no_trend_weight_the_baseline_is_exactly_the_one_before_the_trend(seed: int) -> None:
    rng = random.Random(seed)
    level, values = 10.0, []
    for _ in range(600):  # drift, outliers, clusters and level shifts, at random
        level *= 1.001 if rng.random() < 0.5 else (1 + rng.choice((-1, 1)) * 0.5 if rng.random() < 0.01 else 1.0)
        outlier = rng.random() < 0.05
        values.append(level * (1 + rng.choice((-1, 1)) * 0.3) if outlier else noisy(rng, level, 0.03 * level))
    new, old = EMPTY, EMPTY
    for v in values:
        obs = observe(new, v, **NO_TREND)  # type: ignore[arg-type]
        old, z = observe_before_the_trend(old, v)
        new = obs.baseline
        assert (new, obs.z) == (old, z)


def test_an_outlier_moves_the_level_on_by_the_trend_only_and_a_level_shift_drops_the_trend() -> None:
    b = Baseline(100, 10.0, 0.09, 0, 0.0, 0.01)
    after = observe(b, 20.0, **PARAMS)  # type: ignore[arg-type]
    assert after.expected_mean == 10.01 and after.z is not None and after.z > 5.0
    assert after.baseline == Baseline(101, 10.01, 0.09, 1, 20.0, 0.01)
    for _ in range(PARAMS["level_shift_after"] - 1):  # type: ignore[operator]
        b = observe(after.baseline, 20.0, **PARAMS).baseline  # type: ignore[arg-type]
        after = observe(b, 20.0, **PARAMS)  # type: ignore[arg-type]
    shifted = after.baseline
    assert (shifted.mean, shifted.trend, shifted.run) == (20.0, 0.0, 0)


def test_a_non_finite_trend_is_not_a_sound_state() -> None:
    assert is_finite_state(Baseline(30, 5.0, 0.01, 0, 0.0, 0.001))
    assert not is_finite_state(Baseline(30, 5.0, 0.01, 0, 0.0, math.inf))
    assert not is_finite_state(Baseline(30, 5.0, 0.01, 0, 0.0, math.nan))
