"""Audit sampling: a deterministic function of the event id, favouring low model confidence.

    rate(c) = min(1, base * (1 + boost * (low_confidence - c) / low_confidence))  for c < low_confidence
    rate(c) = base                                                                 otherwise

An event is sampled when hash(id), read as a number in [0, 1), is below its rate: a replay of
the same event always gets the same answer, and over many events the sampled share is the mean
of rate(c).
"""

from __future__ import annotations

import hashlib

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
