"""Audit sampling: a deterministic function of the event id, favouring low model confidence.

    rate(c) = min(1, base * (1 + boost * (low_confidence - c) / low_confidence))  for c < low_confidence
    rate(c) = base                                                                 otherwise

An event is sampled when hash(id), read as a number in [0, 1), is below its rate: a replay of
the same event always gets the same answer, and over many events the sampled share is the mean
of rate(c).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

_SCALE = float(1 << 64)
_blake2b = hashlib.blake2b


def sampling_rate(base_rate: float, confidence: float | None, *, low_confidence: float, boost: float) -> float:
    if confidence is None or confidence >= low_confidence or low_confidence <= 0:
        return base_rate
    return min(1.0, base_rate * (1.0 + boost * (low_confidence - confidence) / low_confidence))


def unit_hash(event_id: str) -> float:
    """A uniform number in [0, 1) derived from the event id alone."""
    return int.from_bytes(_blake2b(event_id.encode(), digest_size=8).digest(), "big") / _SCALE


def sample_for_audit(
    event_id: str, confidence: float | None, base_rate: float, *, low_confidence: float, boost: float
) -> bool:
    rate = sampling_rate(base_rate, confidence, low_confidence=low_confidence, boost=boost)
    return rate > 0 and unit_hash(event_id) < rate


# --- active learning that follows the verdicts ----------------------------------------------------
# An audit sample's verdict says whether the automation was wrong: confirmed or corrected (the
# operator found something to fix) or not (false positive, dismissed, escalated). Per source and per
# model, an exponentially weighted share of "wrong" over its audit verdicts, in resolution order,
# raises the base rate towards a cap, and falls back as operators stop correcting.

AUDIT_WRONG = frozenset({"confirmed", "corrected"})


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """One resolved audit sample: where it came from and whether operators found the automation wrong."""

    resolved_at: datetime
    exception_id: str
    source: str
    model: str | None
    decision: str


@dataclass(frozen=True, slots=True)
class AdaptiveRates:
    """The audit base rate per source and per model that the verdicts call for."""

    by_source: dict[str, float]
    by_model: dict[str, float]
    wrong_share: dict[str, float]  # "source:<topic>" or "model:<name>" -> its weighted share of wrong verdicts

    def base_rate(self, source: str, model: str | None, default: float) -> float:
        """The higher of the source's and the model's rate (the default when neither moved)."""
        return max(self.by_source.get(source, default), self.by_model.get(model or "", 0.0), default)


def _verdict_order(v: AuditVerdict) -> tuple[datetime, str]:
    return (v.resolved_at, v.exception_id)


def _fold(
    shares: dict[str, float], model_source: dict[str, str], ordered: Iterable[AuditVerdict], weight: float
) -> None:
    """Fold verdicts, already in (resolved_at, exception_id) order, into the weighted shares."""
    for v in ordered:
        wrong = 1.0 if v.decision in AUDIT_WRONG else 0.0
        keys = [f"source:{v.source}"] + ([f"model:{v.model}"] if v.model else [])
        for key in keys:
            shares[key] = (1 - weight) * shares.get(key, 0.0) + weight * wrong
        if v.model:
            model_source.setdefault(v.model, v.source)


def _rates(
    shares: dict[str, float],
    model_source: dict[str, str],
    base_rates: Mapping[str, float],
    *,
    cap: float,
    tolerance: float,
    saturation: float,
) -> AdaptiveRates:
    def rate(base: float, share: float) -> float:
        span = max(saturation - tolerance, 1e-9)
        pull = min(1.0, max(0.0, (share - tolerance) / span))
        return base + (max(base, cap) - base) * pull

    by_source = {s: rate(b, shares.get(f"source:{s}", 0.0)) for s, b in base_rates.items()}
    by_model = {
        m: rate(base_rates.get(src, 0.0), shares[f"model:{m}"])
        for m, src in sorted(model_source.items())
        if src in base_rates
    }
    return AdaptiveRates(by_source, by_model, dict(sorted(shares.items())))


def adaptive_audit_rates(
    verdicts: Iterable[AuditVerdict],
    base_rates: Mapping[str, float],
    *,
    cap: float,
    weight: float,
    tolerance: float,
    saturation: float,
) -> AdaptiveRates:
    """Pure and deterministic: the same verdicts (in any order) give the same rates.

    For each source and model, w <- (1 - weight) * w + weight * [wrong], from w = 0, over its audit
    verdicts in (resolved_at, exception_id) order; its rate is
        base + (cap - base) * clamp((w - tolerance) / (saturation - tolerance), 0, 1)
    so it stays at the base while at most `tolerance` of its samples need fixing, reaches the cap
    at `saturation`, and never leaves [base, max(base, cap)]. A model's base is its source's."""
    shares: dict[str, float] = {}
    model_source: dict[str, str] = {}
    _fold(shares, model_source, sorted(verdicts, key=_verdict_order), weight)
    return _rates(shares, model_source, base_rates, cap=cap, tolerance=tolerance, saturation=saturation)


class AuditRateState:
    """The audit verdicts read so far and the rates they call for: always equal to
    adaptive_audit_rates over those verdicts, whatever order they were read in.

    Verdicts are keyed by their outcome id, so an outcome published (or read) twice counts once.
    A batch whose verdicts all sort after the last one folded (the usual case: resolutions arrive
    in time order) is folded onto the shares; any other batch refolds the whole history."""

    def __init__(
        self, base_rates: Mapping[str, float], *, cap: float, weight: float, tolerance: float, saturation: float
    ) -> None:
        self.base_rates = dict(base_rates)
        self.cap, self.weight, self.tolerance, self.saturation = cap, weight, tolerance, saturation
        self._verdicts: dict[str, AuditVerdict] = {}
        self._shares: dict[str, float] = {}
        self._model_source: dict[str, str] = {}
        self._last: tuple[datetime, str] | None = None
        self.rates = self._current()

    def __len__(self) -> int:
        return len(self._verdicts)

    def model_source(self, model: str) -> str | None:
        """The source a model's verdicts were first attributed to (its rate's base)."""
        return self._model_source.get(model)

    def add(self, verdicts: Mapping[str, AuditVerdict]) -> bool:
        """Fold new verdicts (by outcome id; ones already read are ignored); whether any was new."""
        new = sorted((v for oid, v in verdicts.items() if oid not in self._verdicts), key=_verdict_order)
        if not new:
            return False
        self._verdicts.update((oid, v) for oid, v in verdicts.items() if oid not in self._verdicts)
        if self._last is None or _verdict_order(new[0]) > self._last:
            _fold(self._shares, self._model_source, new, self.weight)
        else:  # one resolved before a verdict already folded: the history is refolded in order
            self._shares, self._model_source = {}, {}
            _fold(self._shares, self._model_source, sorted(self._verdicts.values(), key=_verdict_order), self.weight)
        self._last = max(self._last or _verdict_order(new[-1]), _verdict_order(new[-1]))
        self.rates = self._current()
        return True

    def _current(self) -> AdaptiveRates:
        return _rates(
            self._shares,
            self._model_source,
            self.base_rates,
            cap=self.cap,
            tolerance=self.tolerance,
            saturation=self.saturation,
        )
