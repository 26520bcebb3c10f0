"""Online baselines per entity: exponentially weighted mean and variance, with a warm-up.

The state is a small immutable tuple so it can live in a faust table (and its changelog)
as it is. `observe` returns the new state and the z-score of the value against the baseline
*before* the value was added, so an outlier is judged against history, not against itself.
Outliers are not folded into the baseline at full weight (they are clipped to the threshold),
so one spike does not blind the detector to the next. A baseline never holds a non-finite number:
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


EMPTY = Baseline(0, 0.0, 0.0)


class Observation(NamedTuple):
    baseline: Baseline  # the state after this value
    z: float | None  # None while warming up
    expected_mean: float
    expected_std: float


def std_of(b: Baseline, min_relative_std: float) -> float:
    return max(math.sqrt(max(b.var, 0.0)), abs(b.mean) * min_relative_std, 1e-9)


def is_finite_state(b: Baseline) -> bool:
    return b.count >= 0 and math.isfinite(b.mean) and math.isfinite(b.var) and b.var >= 0.0


def observe(
    b: Baseline, x: float, *, alpha: float, warmup: int, z_threshold: float, min_relative_std: float
) -> Observation:
    if not math.isfinite(x):  # not a number the schema lets through; never applied nor scored
        return Observation(b, None, b.mean, std_of(b, min_relative_std))
    obs = _observe(b, x, alpha=alpha, warmup=warmup, z_threshold=z_threshold, min_relative_std=min_relative_std)
    if math.isfinite(obs.baseline.mean) and math.isfinite(obs.baseline.var):
        return obs
    # The state would overflow: the value is too far from history to average with it, so the
    # baseline starts again from it (a later ordinary value restarts it again: it heals itself).
    return Observation(Baseline(1, x, 0.0), None, obs.expected_mean, obs.expected_std)


def _observe(
    b: Baseline, x: float, *, alpha: float, warmup: int, z_threshold: float, min_relative_std: float
) -> Observation:
    if b.count == 0:
        return Observation(Baseline(1, x, 0.0), None, x, 0.0)
    std = max(math.sqrt(b.var) if b.var > 0 else 0.0, abs(b.mean) * min_relative_std, 1e-9)  # std_of, inlined
    z = (x - b.mean) / std
    ready = b.count >= warmup
    # During warm-up use the plain running mean/variance (Welford) so early values weigh equally.
    if not ready:
        n = b.count + 1
        delta = x - b.mean
        mean = b.mean + delta / n
        var = (b.var * (b.count - 1) + delta * (x - mean)) / (n - 1) if n > 1 else 0.0
        return Observation(Baseline(n, mean, var), None, b.mean, std)
    clipped = b.mean + max(-z_threshold, min(z_threshold, z)) * std
    delta = clipped - b.mean
    mean = b.mean + alpha * delta
    var = (1 - alpha) * (b.var + alpha * delta * delta)
    return Observation(Baseline(b.count + 1, mean, var), z, b.mean, std)
