"""Online baselines per entity: exponentially weighted mean and variance, with a warm-up.

The state is a small immutable tuple so it can live in a faust table (and its changelog)
as it is. `observe` returns the new state and the z-score of the value against the baseline
*before* the value was added, so an outlier is judged against history, not against itself.
An observation judged anomalous moves neither the mean nor the variance, so one outlier does
not blind the baseline to the next (two or three in a few events all fire). It only counts
towards a run: `run` anomalies on one side (each ordinary value takes one back) mean a new
normal, and after `level_shift_after` of them the mean moves to theirs (the variance scales with
the level: noise keeps its share): a genuine level shift fires for a bounded number of events,
whatever its size. Slow drift stays within the threshold and is followed by the EWMA. The variance
has a longer memory than the mean (`variance_alpha`): a steadier scale, so an outlier 6 deviations
out scores above 5 nearly always.
A baseline never holds a non-finite number:
a value that would make it so (1e160 squared overflows) starts the baseline afresh from itself,
a non-finite value is never applied, and `is_finite_state`
tells a sound stored state from garbage restored from an old changelog.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Baseline(NamedTuple):
    count: int  # type: ignore[assignment]  # the field shadows tuple.count, on purpose: it reads best
    mean: float
    var: float
    # The anomalies since the baseline last accepted a value, signed by side (+ above, - below),
    # and their mean: the level a genuine shift moved to. Neither is read to judge a value.
    run: int = 0
    run_mean: float = 0.0
    # The level's change per event (Holt's linear trend): the next value is expected at mean + trend.
    # 0 in a state stored before the trend was kept, and while warming up.
    trend: float = 0.0


EMPTY = Baseline(0, 0.0, 0.0)


class Observation(NamedTuple):
    baseline: Baseline  # the state after this value
    z: float | None  # None while warming up
    expected_mean: float
    expected_std: float


def expected_of(b: Baseline) -> float:
    """Where the baseline expects the next value: its level, moved on by its trend."""
    return b.mean + b.trend


def std_of(b: Baseline, min_relative_std: float) -> float:
    return max(math.sqrt(max(b.var, 0.0)), abs(expected_of(b)) * min_relative_std, 1e-9)


def is_finite_state(b: Baseline) -> bool:
    return (
        b.count >= 0
        and math.isfinite(b.mean)
        and math.isfinite(b.var)
        and b.var >= 0.0
        and math.isfinite(b.run_mean)
        and math.isfinite(b.trend)
    )


def observe(
    b: Baseline,
    x: float,
    *,
    alpha: float,
    variance_alpha: float,
    warmup: int,
    z_threshold: float,
    min_relative_std: float,
    level_shift_after: int,
    trend_alpha: float,
) -> Observation:
    if not math.isfinite(x):  # not a number the schema lets through; never applied nor scored
        return Observation(b, None, expected_of(b), std_of(b, min_relative_std))
    obs = _observe(
        b,
        x,
        alpha=alpha,
        variance_alpha=variance_alpha,
        warmup=warmup,
        z_threshold=z_threshold,
        min_relative_std=min_relative_std,
        level_shift_after=level_shift_after,
        trend_alpha=trend_alpha,
    )
    new = obs.baseline
    if math.isfinite(new.mean) and math.isfinite(new.var) and math.isfinite(new.run_mean) and math.isfinite(new.trend):
        return obs
    # The state would overflow: the value is too far from history to average with it, so the
    # baseline starts again from it (a later ordinary value restarts it again: it heals itself).
    return Observation(Baseline(1, x, 0.0), None, obs.expected_mean, obs.expected_std)


def _rescale(old: float, new: float) -> float:
    """How the variance scales when the level moves from `old` to `new`: the noise is taken to keep
    its share of the level (bids, impressions), within a factor of 10 either way for the std."""
    if old <= 0 or new <= 0:
        return 1.0
    return max(0.01, min(100.0, (new / old) ** 2))


def _observe(
    b: Baseline,
    x: float,
    *,
    alpha: float,
    variance_alpha: float,
    warmup: int,
    z_threshold: float,
    min_relative_std: float,
    level_shift_after: int,
    trend_alpha: float,
) -> Observation:
    if b.count == 0:
        return Observation(Baseline(1, x, 0.0), None, x, 0.0)
    expected = b.mean + b.trend  # expected_of, inlined (b.mean itself for a state without a trend)
    std = max(math.sqrt(b.var) if b.var > 0 else 0.0, abs(expected) * min_relative_std, 1e-9)  # std_of, inlined
    z = (x - expected) / std
    ready = b.count >= warmup
    # During warm-up use the plain running mean/variance (Welford) so early values weigh equally.
    if not ready:
        n = b.count + 1
        delta = x - b.mean
        mean = b.mean + delta / n
        var = (b.var * (b.count - 1) + delta * (x - mean)) / (n - 1) if n > 1 else 0.0
        return Observation(Baseline(n, mean, var), None, expected, std)
    if abs(z) > z_threshold:
        side = 1 if z > 0 else -1
        run = b.run + side if b.run * side > 0 else side  # the other side starts a new run
        run_mean = b.run_mean + (x - b.run_mean) / abs(run) if abs(run) > 1 else x
        if abs(run) >= level_shift_after:  # a new normal: judge from its level on, a step, not a slope
            return Observation(Baseline(b.count + 1, run_mean, b.var * _rescale(b.mean, run_mean)), z, expected, std)
        # The level goes on along its trend (the outlier does not move it): the next value is judged
        # where the series would be by then.
        return Observation(Baseline(b.count + 1, expected, b.var, run, run_mean, b.trend), z, expected, std)
    delta = x - expected
    mean = expected + alpha * delta
    trend = b.trend + trend_alpha * delta
    var = (1 - variance_alpha) * (b.var + variance_alpha * delta * delta)
    run = b.run - (b.run > 0) + (b.run < 0)  # an ordinary value takes one anomaly back
    return Observation(Baseline(b.count + 1, mean, var, run, b.run_mean if run else 0.0, trend), z, expected, std)
