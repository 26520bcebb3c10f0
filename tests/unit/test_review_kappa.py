"""Cohen's kappa and raw agreement against values computed by hand on fixed tables."""

from __future__ import annotations

import pytest

from loopgate.resolution_api.review.kappa import Agreement, agreement, agreement_of, table_of


def test_two_by_two_table_matches_the_hand_computed_kappa() -> None:
    # p_o = 35/50 = 0.7; first rater 25 yes / 25 no, second 30 / 20: p_e = (25*30 + 25*20)/50^2 = 0.5
    result = agreement({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    assert result.pairs == 50 and result.agreed == 35
    assert result.raw == pytest.approx(0.7)
    assert result.kappa == pytest.approx(0.4)


def test_three_by_three_table_matches_the_hand_computed_kappa() -> None:
    # p_o = 24/30; margins a 12/12, b 10/10, c 8/8: p_e = 308/900; kappa = (720-308)/(900-308) = 412/592
    table = {("a", "a"): 10, ("a", "b"): 2, ("b", "b"): 8, ("b", "c"): 2, ("c", "c"): 6, ("c", "a"): 2}
    result = agreement(table)
    assert result.raw == pytest.approx(0.8)
    assert result.kappa == pytest.approx(412 / 592)


def test_perfect_agreement_on_two_labels_is_kappa_one() -> None:
    assert agreement({("yes", "yes"): 3, ("no", "no"): 2}) == Agreement(pairs=5, agreed=5, raw=1.0, kappa=1.0)


def test_systematic_disagreement_is_kappa_minus_one() -> None:
    result = agreement({("yes", "no"): 5, ("no", "yes"): 5})
    assert result.raw == 0.0
    assert result.kappa == pytest.approx(-1.0)


def test_all_one_label_has_raw_agreement_one_and_no_kappa() -> None:
    # chance agreement is 1: kappa is 0/0, said as None rather than a made-up number
    assert agreement({("yes", "yes"): 7}) == Agreement(pairs=7, agreed=7, raw=1.0, kappa=None)


def test_each_rater_one_different_label_is_kappa_zero() -> None:
    assert agreement({("yes", "no"): 4}) == Agreement(pairs=4, agreed=0, raw=0.0, kappa=0.0)


def test_empty_table_has_no_figures() -> None:
    assert agreement({}) == Agreement(pairs=0, agreed=0, raw=None, kappa=None)
    assert agreement({("yes", "no"): 0}) == Agreement(pairs=0, agreed=0, raw=None, kappa=None)
    assert agreement_of([]) == Agreement(pairs=0, agreed=0, raw=None, kappa=None)


def test_pairs_and_their_table_give_the_same_figures() -> None:
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert table_of(pairs) == {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}
    assert agreement_of(pairs) == agreement(table_of(pairs))


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        agreement({("yes", "yes"): 3, ("yes", "no"): -1})
