"""The suggestions' evaluation (tools/loopgate_tools/suggestion_eval.py) on small simulated histories:
it scores the API's own suggestion rule, is deterministic per seed, and tells a steady stream from
a coin flip."""

from __future__ import annotations

from pathlib import Path

from loopgate_tools.suggestion_eval import SCENARIOS, Scenario, Score, evaluate_scenario, report


def _scenario(prefix: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name.startswith(prefix))


def test_a_steady_stream_of_false_positives_is_suggested_right_most_of_the_time() -> None:
    score = evaluate_scenario(_scenario("mostly false positives"), streams=4, items=100, seed=1)

    assert score.items == 400
    assert score.suggested / score.items > 0.9  # all but the first three of each stream, nearly
    assert score.right / score.suggested > 0.85


def test_a_coin_flip_history_gives_few_suggestions_and_no_skill() -> None:
    score = evaluate_scenario(_scenario("mixed"), streams=4, items=100, seed=1)

    assert score.suggested / score.items < 0.5
    assert 0.3 < score.right / score.suggested < 0.7


def test_the_first_three_items_of_a_stream_get_no_suggestion() -> None:
    score = evaluate_scenario(_scenario("rarely right"), streams=1, items=3, seed=1)

    assert (score.items, score.suggested) == (3, 0)


def test_the_report_is_the_same_for_the_same_seed() -> None:
    assert report(streams=2, items=30, seed=5) == report(streams=2, items=30, seed=5)
    assert Score().suggested == 0


def test_docs_suggestions_md_is_what_the_evaluation_writes() -> None:
    """docs/suggestions.md is generated: regenerate it with `loopgate-tools evaluate-suggestions`."""
    written = (Path(__file__).parents[2] / "docs" / "suggestions.md").read_text(encoding="utf-8")

    assert written == report()
