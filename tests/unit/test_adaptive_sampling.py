"""Active learning that follows the verdicts: the audit rate of a source or model whose audit samples
operators keep correcting rises towards a cap, and falls back as they stop."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from loopgate.detector.sampling import AdaptiveRates, AuditVerdict, adaptive_audit_rates
from loopgate_schemas import topics

BASE = {topics.BIDS: 0.01, topics.TRAFFICKING: 0.02, topics.CONTENT: 0.05}
PARAMS = {"cap": 0.25, "weight": 0.1, "tolerance": 0.05, "saturation": 0.5}
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def audits(decisions: list[str], *, model: str | None = "caption-gen-3", start: int = 0) -> list[AuditVerdict]:
    return [
        AuditVerdict(T0 + timedelta(minutes=start + i), f"a-{start + i}", topics.CONTENT, model, d)
        for i, d in enumerate(decisions)
    ]


def rates(verdicts: list[AuditVerdict]) -> AdaptiveRates:
    return adaptive_audit_rates(verdicts, BASE, **PARAMS)


def test_no_verdicts_leave_every_source_at_its_base_rate() -> None:
    assert rates([]).by_source == BASE


def test_a_model_whose_samples_keep_being_corrected_is_audited_up_to_the_cap() -> None:
    r = rates(audits(["corrected"] * 40))
    assert r.by_model["caption-gen-3"] > 0.24
    assert r.by_model["caption-gen-3"] <= 0.25
    assert r.base_rate(topics.CONTENT, "caption-gen-3", 0.05) == r.by_model["caption-gen-3"]
    assert r.by_source[topics.BIDS] == 0.01  # other sources are untouched


def test_occasional_corrections_within_the_tolerance_do_not_move_the_rate() -> None:
    decisions = ["corrected" if i % 40 == 0 else "false_positive" for i in range(400)]
    assert rates(audits(decisions)).by_source[topics.CONTENT] == 0.05


def test_the_rate_falls_back_to_the_base_as_operators_stop_correcting() -> None:
    burst = audits(["confirmed"] * 30)
    high = rates(burst).by_model["caption-gen-3"]
    calm = rates(burst + audits(["false_positive"] * 60, start=30)).by_model["caption-gen-3"]
    assert high > 0.2
    assert calm == 0.05


def test_the_rate_stays_between_the_base_and_the_cap_whatever_the_history() -> None:
    rng = random.Random(5)
    for _ in range(50):
        decisions = [rng.choice(["confirmed", "corrected", "false_positive", "dismissed"]) for _ in range(60)]
        r = rates(audits(decisions, model=rng.choice(["m1", "m2", None])))
        for source, rate in r.by_source.items():
            assert BASE[source] <= rate <= 0.25
        assert all(0.05 <= rate <= 0.25 for rate in r.by_model.values())


def test_the_same_history_in_any_order_gives_the_same_rates() -> None:
    history = audits(["corrected", "false_positive", "confirmed"] * 20)
    shuffled = history[:]
    random.Random(3).shuffle(shuffled)
    assert rates(history) == rates(shuffled)


def test_a_cap_below_the_base_never_lowers_the_base() -> None:
    r = adaptive_audit_rates(audits(["corrected"] * 40), BASE, **{**PARAMS, "cap": 0.01})
    assert r.by_source[topics.CONTENT] == 0.05
