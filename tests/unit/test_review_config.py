"""The second-review policy file: strict, every bad key refused by name; the selection it drives."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopgate.resolution_api.review.config import (
    NOTHING_REVIEWED,
    ReviewConfigError,
    ReviewPolicy,
    chosen,
    load_review_policy,
)


def _load(tmp_path: Path, text: str) -> ReviewPolicy:
    path = tmp_path / "review.toml"
    path.write_text(text, encoding="utf-8")
    return load_review_policy(path)


def test_packaged_file_reviews_nothing() -> None:
    policy = load_review_policy()
    assert policy == NOTHING_REVIEWED
    assert policy.reviews_nothing and policy.lead_queue == "leads"


def test_a_full_file_is_read(tmp_path: Path) -> None:
    text = """
lead_queue = "leads-emea"
first_resolutions = 20
default_share = 0.05
[[shares]]
name = "money"
rule = ["bid_over_cap"]
share = 0.25
[[shares]]
queue = ["reviewers-acme"]
share = 1.0
"""
    policy = _load(tmp_path, text)
    assert policy.lead_queue == "leads-emea" and policy.first_resolutions == 20
    assert policy.share_for("bid_over_cap", "anything") == 0.25
    assert policy.share_for("other", "reviewers-acme") == 1.0
    assert policy.share_for("other", "default") == 0.05


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("lead_queu = 'x'", "lead_queu: Extra inputs are not permitted"),
        ("default_share = 1.5", "default_share: Input should be less than or equal to 1"),
        ("default_share = -0.1", "default_share: Input should be greater than or equal to 0"),
        ("default_share = nan", "default_share: Input should be a finite number"),
        ("default_share = inf", "default_share:"),
        ("default_share = '0.5'", "default_share:"),
        ("first_resolutions = -1", "first_resolutions: Input should be greater than or equal to 0"),
        ("first_resolutions = 2.5", "first_resolutions: Input should be a valid integer"),
        ("first_resolutions = true", "first_resolutions: Input should be a valid integer"),
        ("first_resolutions = 10001", "first_resolutions: Input should be less than or equal to 10000"),
        ("lead_queue = ''", "lead_queue: String should have at least 1 character"),
        ("lead_queue = 'lead queue'", "lead_queue 'lead queue': a queue name starts with a letter or digit"),
        ("lead_queue = 'leads-{client_id}'", "a queue name starts with a letter or digit"),
        ("[[shares]]\nrule = ['x']", "shares.0.share: Field required"),
        ("[[shares]]\nrule = []\nshare = 0.5", "shares.0: rule: an empty list matches nothing"),
        ("[[shares]]\nqueue = ['']\nshare = 0.5", "shares.0.queue.0: String should have at least 1 character"),
        ("[[shares]]\nclient = ['acme']\nshare = 0.5", "shares.0.client: Extra inputs are not permitted"),
        ("[[shares]]\nshare = 2\n", "shares.0.share: Input should be less than or equal to 1"),
        ("default_share = 1\nlead_queue = 7", "lead_queue: Input should be a valid string"),
        ("shares = 'all'", "shares: Input should be a valid list"),
        ("lead_queue = 'a'\nlead_queue = 'b'", "Cannot overwrite a value"),
        ("not toml at all [", "review.toml:"),
    ],
)
def test_hostile_files_are_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ReviewConfigError) as caught:
        _load(tmp_path, text)
    assert named in str(caught.value)
    assert str(tmp_path / "review.toml") in str(caught.value)


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ReviewConfigError, match=r"absent\.toml: no such file"):
        load_review_policy(tmp_path / "absent.toml")


def test_a_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "review.toml"
    path.write_bytes(b"lead_queue = '\xff'")
    with pytest.raises(ReviewConfigError, match=r"review\.toml"):
        load_review_policy(path)


def test_every_resolution_of_an_operators_first_n_is_chosen() -> None:
    policy = ReviewPolicy(first_resolutions=3)
    picks = [
        chosen(policy, exception_id=f"e{i}", resolution_count=1, rule_id="r", queue="q", resolver_prior=i)
        for i in range(5)
    ]
    assert picks == ["first_resolutions"] * 3 + [None, None]


def test_share_chooses_about_that_share_deterministically() -> None:
    policy = ReviewPolicy.model_validate({"shares": [{"rule": ["r"], "share": 0.25}]})
    picks = [
        chosen(policy, exception_id=f"e{i}", resolution_count=1, rule_id="r", queue="q", resolver_prior=100)
        for i in range(4000)
    ]
    again = [
        chosen(policy, exception_id=f"e{i}", resolution_count=1, rule_id="r", queue="q", resolver_prior=100)
        for i in range(4000)
    ]
    assert picks == again
    assert set(picks) == {"share", None}
    assert 900 <= picks.count("share") <= 1100
    assert chosen(policy, exception_id="e1", resolution_count=1, rule_id="other", queue="q", resolver_prior=100) is None


def test_share_one_chooses_all_and_zero_none() -> None:
    every = ReviewPolicy(default_share=1.0)
    assert all(
        chosen(every, exception_id=f"e{i}", resolution_count=1, rule_id="r", queue="q", resolver_prior=9) == "share"
        for i in range(200)
    )
    assert all(
        chosen(NOTHING_REVIEWED, exception_id=f"e{i}", resolution_count=1, rule_id="r", queue="q", resolver_prior=0)
        is None
        for i in range(200)
    )
