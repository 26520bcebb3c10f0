"""Cohen's kappa and raw agreement between two raters, from their paired labels or a k x k table.

kappa = (p_o - p_e) / (1 - p_e), where p_o is the share of items both raters labelled alike and p_e
the share expected by chance from each rater's own label shares. Degenerate tables say so instead
of dividing by zero: no pairs gives None for both figures; when chance agreement is already 1 (both
raters used one and the same label for everything) kappa is undefined (None) while raw agreement is 1.
Pure: the agreement statistics, the tests and any tool call the same function."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Agreement:
    pairs: int
    agreed: int
    raw: float | None  # p_o: agreed / pairs; None when there are no pairs
    kappa: float | None  # None when there are no pairs or chance agreement is 1


def table_of(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The contingency table (first label, second label) -> count of `pairs`."""
    return dict(Counter(pairs))


def agreement(table: Mapping[tuple[str, str], int]) -> Agreement:
    """Raw agreement and Cohen's kappa of a contingency table (any k labels; negative counts refused)."""
    if any(count < 0 for count in table.values()):
        raise ValueError("a contingency table holds no negative counts")
    total = sum(table.values())
    if total == 0:
        return Agreement(pairs=0, agreed=0, raw=None, kappa=None)
    agreed = sum(count for (first, second), count in table.items() if first == second)
    first_share: Counter[str] = Counter()
    second_share: Counter[str] = Counter()
    for (first, second), count in table.items():
        first_share[first] += count
        second_share[second] += count
    observed = agreed / total
    chance = sum(first_share[label] * second_share[label] for label in first_share) / (total * total)
    kappa = None if chance >= 1.0 else (observed - chance) / (1.0 - chance)
    return Agreement(pairs=total, agreed=agreed, raw=observed, kappa=kappa)


def agreement_of(pairs: Iterable[tuple[str, str]]) -> Agreement:
    """Raw agreement and Cohen's kappa of paired labels (first rater's, second rater's)."""
    return agreement(table_of(pairs))
