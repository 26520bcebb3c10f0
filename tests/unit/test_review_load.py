"""Review load: what a person sees under Loopgate's gates, what it catches and what it costs, against
review-everything and a same-size random sample, on worlds small enough to count by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from loopgate.detector.config import SamplingConfig, load_detection_config
from loopgate.detector.processing import Detector
from loopgate.resolution_api.queues.routing import RoutingTable, load_routes
from loopgate_schemas import topics
from loopgate_tools.cli import app
from loopgate_tools.review_load import Options, compare, gate_reviews, measure, measure_editor_case
from loopgate_tools.review_load_doc import editor_rows, markdown, plot_png, render_table
from loopgate_tools.simulator.editorial import EDITORIAL_CLIENT, LabelledEvent, editorial_posts
from loopgate_tools.simulator.generator import BID_ADJUSTED, CONTENT_GENERATED, SimEvent

CONFIG = load_detection_config()
ROUTES = load_routes()
NO_AUDIT = CONFIG.model_copy(update={"sampling": SamplingConfig.model_validate({s: 0.0 for s in topics.UPSTREAM})})
AUDIT_EVERY_POST = CONFIG.model_copy(
    update={"sampling": SamplingConfig.model_validate({topics.BIDS: 0.0, topics.TRAFFICKING: 0.0, topics.CONTENT: 1.0})}
)
ONE_WEEK = Options(count=0, weeks=1, posts_per_week=8)


def post(n: int, *, voice: float = 0.9, claims: tuple[str, ...] = (), problems: tuple[str, ...] = ()) -> LabelledEvent:
    content_id = f"post-hand-{n}"
    data = {
        "content_id": content_id,
        "client_id": EDITORIAL_CLIENT,
        "platform": "instagram",
        "caption": "Meet the Espresso Blend.",
        "model": "copywriter-v4",
        "model_confidence": 0.9,
        "brand_voice_score": voice,
        "brand_safety_score": 0.95,
        "product_claims": list(claims),
    }
    return _labelled(f"hand-{n}", CONTENT_GENERATED, topics.CONTENT, content_id, data, problems)


def bid(n: int, *, bid_cpm: float, cap: float, problems: tuple[str, ...] = ()) -> LabelledEvent:
    data = {
        "campaign_id": "cmp-1",
        "line_item_id": "li-1",
        "client_id": "northwind",
        "platform": "ttd",
        "bid_cpm": bid_cpm,
        "previous_bid_cpm": bid_cpm,
        "max_bid_cpm": cap,
        "currency": "EUR",
        "strategy": "target_cpa",
        "model_confidence": 0.9,
    }
    return _labelled(f"hand-bid-{n}", BID_ADJUSTED, topics.BIDS, "cmp-1", data, problems)


def _labelled(
    event_id: str, event_type: str, topic: str, subject: str, data: dict[str, Any], problems: tuple[str, ...]
) -> LabelledEvent:
    value = orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "hand/test",
            "type": event_type,
            "time": "2026-11-23T10:00:00Z",
            "subject": subject,
            "data": data,
        }
    )
    event = SimEvent(topic, subject.encode(), value, event_id, event_type, subject)
    return LabelledEvent(event, frozenset(problems), {p: "by hand" for p in problems})


# Eight posts of one week, 8 minutes each; no audit sampling:
#   1 flagged off-voice, really off-voice       -> editor, a hit
#   2 flagged off-voice, really fine            -> editor, no problem
#   3 a claim, really unsubstantiated           -> the client's reviewers, a hit
#   4 a claim and off-voice, really off-voice   -> editor and client: two reviews (16 minutes), a hit
#   5 scored on-voice, really off-voice         -> nobody: the miss
#   6-8 fine and scored fine                    -> nobody
HAND_POSTS = [
    post(1, voice=0.3, problems=("brand_voice",)),
    post(2, voice=0.3),
    post(3, claims=("50% less sugar",), problems=("claim_verification",)),
    post(4, voice=0.2, claims=("Fairtrade certified",), problems=("brand_voice",)),
    post(5, voice=0.65, problems=("brand_voice",)),
    post(6),
    post(7),
    post(8),
]


def rows_of(rules: list[Any]) -> dict[str, Any]:
    return {r.label: r for r in rules}


def test_the_gates_figures_on_a_hand_counted_week() -> None:
    c = compare("hand", gate_reviews(HAND_POSTS, config=NO_AUDIT, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    g = c.gate
    assert (g.events, g.seen, g.problems, g.hits, g.minutes) == (8, 4, 4, 3, 40.0)
    assert (g.share, g.recall, g.precision) == (0.5, 0.75, 0.75)


def test_review_everything_sees_every_post_once() -> None:
    c = compare("hand", gate_reviews(HAND_POSTS, config=NO_AUDIT, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    e = c.everything
    assert (e.seen, e.hits, e.minutes, e.share, e.recall, e.precision) == (8, 4, 64.0, 1.0, 1.0, 0.5)


def test_per_rule_recall_counts_problems_of_its_kind_and_precision_its_firings() -> None:
    c = compare("hand", gate_reviews(HAND_POSTS, config=NO_AUDIT, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    rules = rows_of(c.rules)
    assert list(rules) == ["brand_voice", "claim_verification"]
    voice, claims = rules["brand_voice"], rules["claim_verification"]
    assert (voice.seen, voice.problems, voice.hits, voice.minutes) == (3, 3, 2, 24.0)
    assert voice.recall == voice.precision == pytest.approx(2 / 3)
    assert (claims.seen, claims.problems, claims.hits, claims.minutes) == (2, 1, 1, 16.0)
    assert (claims.recall, claims.precision, claims.share) == (1.0, 0.5, 0.25)


def test_style_flags_go_to_the_editor_and_claims_to_the_clients_reviewers() -> None:
    case = measure_editor_case(HAND_POSTS, ONE_WEEK, NO_AUDIT, ROUTES)
    assert case.minutes_by_queue == {"default": 24.0, f"reviewers-{EDITORIAL_CLIENT}": 16.0}
    assert case.items_by_queue == {"default": 3, f"reviewers-{EDITORIAL_CLIENT}": 2}
    assert (case.editor_minutes, case.client_minutes) == (24.0, 16.0)


def test_a_missed_problem_says_which_post_and_why() -> None:
    case = measure_editor_case(HAND_POSTS, ONE_WEEK, NO_AUDIT, ROUTES)
    assert case.missed_by_rule == {"brand_voice": 1}
    [miss] = case.misses
    assert (miss.event_id, miss.problem) == ("hand-5", "brand_voice")
    assert miss.why.startswith("brand_voice_score 0.65 is not below brand_voice_min 0.6")


def test_a_problem_its_rule_missed_but_a_person_saw_is_not_a_miss() -> None:
    posts = [post(1, voice=0.65, claims=("50% less sugar",), problems=("brand_voice",))]
    case = measure_editor_case(posts, ONE_WEEK, NO_AUDIT, ROUTES)
    assert case.missed_by_rule == {"brand_voice": 1}
    assert case.misses == []
    assert case.seen_anyway("brand_voice") == 1
    assert case.comparison.gate.recall == 1.0


def test_a_claim_the_claim_detector_did_not_find_is_missed_with_that_reason() -> None:
    posts = [post(1, problems=("claim_verification",))]
    [miss] = measure_editor_case(posts, ONE_WEEK, NO_AUDIT, ROUTES).misses
    assert miss.why.startswith("product_claims is empty")


def test_audit_samples_are_human_time() -> None:
    posts = [post(n) for n in range(1, 4)]
    c = compare("hand", gate_reviews(posts, config=AUDIT_EVERY_POST, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    assert (c.gate.seen, c.gate.minutes) == (3, 24.0)
    audit = rows_of(c.rules)["audit_sample"]
    assert (audit.seen, audit.problems, audit.hits, audit.minutes, audit.precision) == (3, 0, 0, 24.0, 0.0)
    assert audit.recall is None


def test_a_bid_over_its_cap_costs_one_bid_review() -> None:
    bids = [
        bid(1, bid_cpm=5.0, cap=4.0, problems=("bid_over_cap",)),
        bid(2, bid_cpm=5.0, cap=9.0),
        bid(3, bid_cpm=5.0, cap=9.0),
    ]
    c = compare("bids", gate_reviews(bids, config=NO_AUDIT, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    assert (c.gate.seen, c.gate.hits, c.gate.minutes) == (1, 1, 2.0)
    assert c.gate.share == pytest.approx(1 / 3)
    assert (c.everything.minutes, c.everything.precision) == (6.0, pytest.approx(1 / 3))


def test_the_random_sample_is_as_large_as_what_the_gates_showed() -> None:
    c = compare("hand", gate_reviews(HAND_POSTS, config=NO_AUDIT, routes=ROUTES), ONE_WEEK.minutes(), seed=1)
    assert c.random_sample.seen == c.gate.seen == 4
    assert c.random_sample.minutes == 32.0  # each sampled post reviewed once


@pytest.fixture(scope="module")
def small() -> Any:
    return measure(Options(count=3000, weeks=4), CONFIG, ROUTES)


def test_every_random_baseline_of_a_measurement_matches_its_gate_in_size(small: Any) -> None:
    for c in [*small.sources, small.agency, small.editor.comparison]:
        assert c.random_sample.seen == c.gate.seen, c.label
        assert c.random_sample.events == c.gate.events == c.everything.seen


def test_the_editor_reviewing_everything_spends_30_posts_times_8_minutes_a_week() -> None:
    case = measure(Options(count=0, weeks=3), CONFIG, ROUTES).editor
    assert case.comparison.everything.seen == 90
    assert case.comparison.everything.minutes == 3 * 30 * 8 == 720.0
    _label, editor, client, together, _row = editor_rows(case)[0]
    assert (editor, client, together) == (240.0, 0.0, 240.0)


def test_minutes_per_post_sets_the_price_of_every_post_review() -> None:
    case = measure(Options(count=0, weeks=1, minutes_per_post=10), CONFIG, ROUTES).editor
    assert case.comparison.everything.minutes == 300.0
    reviews = sum(case.items_by_queue.values())
    assert case.comparison.gate.minutes == 10.0 * reviews


def test_the_same_seed_gives_the_same_doc_and_plot() -> None:
    options = Options(count=800, weeks=2, seed=3)
    first, second = measure(options, CONFIG, ROUTES), measure(options, CONFIG, ROUTES)
    assert markdown(first) == markdown(second)
    assert render_table(first) == render_table(second)
    assert plot_png(first) == plot_png(second)


def test_another_seed_gives_another_world() -> None:
    a = measure(Options(count=800, weeks=2, seed=3), CONFIG, ROUTES)
    b = measure(Options(count=800, weeks=2, seed=4), CONFIG, ROUTES)
    assert markdown(a) != markdown(b)


def test_the_editor_cases_posts_fire_exactly_what_their_scores_call_for() -> None:
    """The misses are the classifiers' (their scores), never the detector's: on every post the detector
    fires exactly the rules the post's values call for."""
    detector = Detector(CONFIG)
    for post_ in editorial_posts(weeks=8, seed=7, rules=NO_AUDIT):
        ev = post_.event
        outcome = detector.process(ev.topic, ev.value, topic=ev.topic, partition=0, offset=0)
        assert {r.rule_id for r in outcome.records} - {"audit_sample"} == set(ev.expected_rules), ev.event_id


def test_the_editor_cases_posts_are_the_same_for_a_seed() -> None:
    a = editorial_posts(weeks=2, seed=7, rules=CONFIG)
    b = editorial_posts(weeks=2, seed=7, rules=CONFIG)
    assert [p.event.value for p in a] == [p.event.value for p in b]
    assert len(a) == 60
    assert {orjson.loads(p.event.value)["data"]["platform"] for p in a} == {
        "instagram",
        "facebook",
        "linkedin",
        "tiktok",
    }


def test_the_command_writes_the_doc_and_the_plot(tmp_path: Path) -> None:
    args = ["--count", "400", "--weeks", "2", "--seed", "5"]
    result = CliRunner().invoke(app, ["evaluate", "--review-load", *args, "--docs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Editor case: bluefin, 30 posts a week for 2 weeks" in result.output
    doc, plot = tmp_path / "review-load.md", tmp_path / "review-load.png"
    expected = measure(Options(count=400, weeks=2, seed=5), CONFIG, ROUTES)
    assert doc.read_text() == markdown(expected)
    assert plot.read_bytes() == plot_png(expected)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![" in doc.read_text() and "(review-load.png)" in doc.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--weeks", "0"], "--weeks"),
        (["--weeks", "-3"], "--weeks"),
        (["--posts-per-week", "0"], "--posts-per-week"),
        (["--posts-per-week", "-30"], "--posts-per-week"),
        (["--minutes-per-post", "0"], "--minutes-per-post"),
        (["--minutes-per-post", "-8"], "--minutes-per-post"),
        (["--minutes-per-post", "nan"], "--minutes-per-post"),
        (["--minutes-per-post", "inf"], "--minutes-per-post"),
        (["--client", "nobody"], "unknown client 'nobody'"),
        (["--count", "-1"], "--count"),
        (["--anomaly-share", "1.5"], "--anomaly-share"),
    ],
)
def test_hostile_options_are_refused_naming_the_option(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--review-load", "--docs", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "review-load.md").exists()


@pytest.mark.parametrize(
    "bad",
    [{"weeks": 0}, {"posts_per_week": -1}, {"minutes_per_post": -0.5}, {"minutes_per_post": math.inf}, {"client": "x"}],
)
def test_options_refuse_what_cannot_be_measured(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Options(**bad)


def test_the_posts_of_an_unknown_client_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown client 'nobody'"):
        editorial_posts(weeks=1, seed=7, rules=CONFIG, client_id="nobody")


def test_an_existing_client_can_be_the_editor_case_on_its_own_platforms() -> None:
    case = measure(Options(count=0, weeks=1, client="contoso"), CONFIG, ROUTES).editor
    assert case.comparison.everything.seen == 30
    assert set(case.minutes_by_queue) <= {"default", "reviewers-contoso"}


def test_routes_decide_who_spends_the_minutes() -> None:
    style_to_a_desk = RoutingTable.model_validate({"routes": [{"rule": ["brand_voice"], "queue": "style-desk"}]})
    case = measure_editor_case(HAND_POSTS, ONE_WEEK, NO_AUDIT, style_to_a_desk)
    assert case.minutes_by_queue == {"default": 16.0, "style-desk": 24.0}
    assert case.client_minutes == 0.0
