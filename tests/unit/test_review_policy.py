"""Review policies (issue 26 item 0): the [review] tables are read strictly (a bad one refuses to start,
naming the key), and each mode holds, samples or leaves events exactly as documented."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from loopgate.common.settings import Settings
from loopgate.detector.config import ConfigError, DetectionConfig, load_detection_config
from loopgate.detector.processing import Detector
from loopgate.detector.review_config import ApproveAll, ExceptionsOnly, Sample
from loopgate.detector.review_policy import release_deadline, scheduled_time
from loopgate_schemas import topics
from loopgate_schemas.examples import CONTRACT_EXAMPLES as EXAMPLES_DIR
from loopgate_schemas.exceptions import Kind, exception_id_for

BASE = (Path(__file__).resolve().parents[2] / "services/loopgate/detector/detection.toml").read_text()
CONTENT = json.loads((EXAMPLES_DIR / "content-generated.json").read_text())  # client contoso, has claims


def config_of(tmp_path: Path, review: str) -> DetectionConfig:
    path = tmp_path / "detection.toml"
    path.write_text(BASE + "\n" + review)
    return load_detection_config(path)


@pytest.mark.parametrize(
    ("review", "named"),
    [
        ('[review.bogus.northwind]\nmode = "approve_all"', "unknown source 'bogus'"),
        ('[review."content-pipeline.events".northwind]\nmode = "approve_everything"', "does not match any of"),
        ('[review."content-pipeline.events".northwind]\ndeadline_margin_minutes = 5', "Unable to extract tag"),
        (
            '[review."content-pipeline.events".northwind]\nmode = "approve_all"\nmargin = 5',
            "review.content-pipeline.events.northwind.approve_all.margin: Extra inputs are not permitted",
        ),
        (
            '[review."content-pipeline.events".northwind]\nmode = "sample"\ndeadline_margin_minutes = 5',
            "review.content-pipeline.events.northwind.sample.deadline_margin_minutes: Extra inputs",
        ),
        (
            '[review."content-pipeline.events".northwind]\nmode = "approve_all"\ndeadline_margin_minutes = -1',
            "approve_all.deadline_margin_minutes: Input should be greater than or equal to 0",
        ),
        (
            '[review."content-pipeline.events".northwind]\nmode = "approve_all"\ndeadline_margin_minutes = 30.5',
            "approve_all.deadline_margin_minutes: Input should be a valid integer",
        ),
        (
            '[review."content-pipeline.events".northwind]\nmode = "approve_all"\ndeadline_margin_minutes = 99999',
            "approve_all.deadline_margin_minutes: Input should be less than or equal to 10080",
        ),
        ('[review."content-pipeline.events".northwind]\nmode = "risk"', "mode 'risk' needs min_severity, min_amount"),
        (
            '[review."content-pipeline.events".northwind]\nmode = "risk"\nmin_severity = "urgent"',
            "risk.min_severity: Input should be 'info', 'low', 'medium', 'high' or 'critical'",
        ),
        ('[review."bid-management.events".northwind]\nmode = "risk"\nmin_amount = -5', "risk.min_amount"),
        ('[review."bid-management.events".northwind]\nmode = "risk"\nmin_amount = nan', "risk.min_amount"),
        (
            '[review."content-pipeline.events".northwind]\nmode = "uncertain"',
            "uncertain.max_confidence: Field required",
        ),
        ('[review."content-pipeline.events".northwind]\nmode = "uncertain"\nmax_confidence = true', "max_confidence"),
        ('[review."content-pipeline.events".northwind]\nmode = "uncertain"\nmax_confidence = 1.5', "max_confidence"),
        ('[review."content-pipeline.events".northwind]\nmode = "sample"\nrate = "5%"', "sample.rate"),
        ('[review."content-pipeline.events".northwind]\nmode = "sample"\nrate = inf', "sample.rate"),
        ('[review."content-pipeline.events".northwind]\nmode = 1', "does not match any of"),
        ('[review."content-pipeline.events"]\nnorthwind = "approve_all"', "review.content-pipeline.events.northwind"),
        ('[review."content-pipeline.events"." "]\nmode = "approve_all"', "client id ' ' is empty"),
        ('[review."content-pipeline.events"."a\\tb"]\nmode = "approve_all"', "holds control characters"),
        ('[review]\n"content-pipeline.events" = "approve_all"', "review.content-pipeline.events: Input should be"),
    ],
    ids=lambda v: v[:60] if isinstance(v, str) else v,
)
def test_a_bad_review_table_refuses_to_start_naming_the_key(tmp_path: Path, review: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_of(tmp_path, review)
    assert named in str(refused.value).replace("`", "")


def test_a_client_gets_its_own_policy_else_the_sources_star_else_none(tmp_path: Path) -> None:
    review = config_of(
        tmp_path,
        '[review."content-pipeline.events".northwind]\nmode = "approve_all"\n'
        '[review."content-pipeline.events"."*"]\nmode = "exceptions_only"\n'
        '[review."bid-management.events".contoso]\nmode = "sample"\nrate = 0.5\n',
    ).review
    assert review.policy_for(topics.CONTENT, "northwind") == ApproveAll(mode="approve_all")
    assert review.policy_for(topics.CONTENT, "contoso") == ExceptionsOnly(mode="exceptions_only")
    assert review.policy_for(topics.BIDS, "contoso") == Sample(mode="sample", rate=0.5)
    assert review.policy_for(topics.BIDS, "northwind") is None
    assert review.policy_for(topics.TRAFFICKING, "northwind") is None
    assert load_detection_config().review.root == {}  # the packaged file holds no policy: today's behaviour


# --- what each mode does --------------------------------------------------------------------------


def content(client: str = "contoso", event_id: str = "c-1", **data: Any) -> bytes:
    event = {**CONTENT, "id": event_id, "data": {**CONTENT["data"], "client_id": client, **data}}
    return json.dumps(event).encode()


def records_of(config: DetectionConfig, value: bytes, source: str = topics.CONTENT) -> list[Any]:
    outcome = Detector(config).process(source, value, topic=source, partition=0, offset=7)
    assert outcome.rejected is None
    return outcome.records


def rules_of(config: DetectionConfig, value: bytes) -> list[str]:
    return sorted(r.rule_id for r in records_of(config, value))


def test_approve_all_holds_every_event_beside_its_exceptions(tmp_path: Path) -> None:
    config = config_of(
        tmp_path, '[review."content-pipeline.events".contoso]\nmode = "approve_all"\ndeadline_margin_minutes = 45'
    )
    value = content(event_id="c-42", scheduled_at="2026-12-08T10:00:00+01:00")
    records = records_of(config, value)
    assert sorted(r.rule_id for r in records) == ["approval_gate", "claim_verification"]
    (item,) = [r for r in records if r.rule_id == "approval_gate"]
    assert item.kind is Kind.APPROVAL
    assert item.exception_id == exception_id_for("c-42", "approval_gate")
    assert item.fingerprint == f"approval_gate:{item.subject}:c-42"  # never grouped
    assert item.severity == "medium"
    assert item.deadline == datetime(2026, 12, 8, 8, 15, tzinfo=UTC)
    assert item.observed == {
        "review_policy": "approve_all",
        "scheduled_at": "2026-12-08T10:00:00+01:00",
        "flags": ["claim_verification"],
    }
    clean = content(event_id="c-43", product_claims=[])  # no rule fires: still held
    assert rules_of(config, clean) == ["approval_gate"]
    other = content(client="northwind", event_id="c-44", product_claims=[])  # another client: not held
    assert rules_of(config, other) == []


def test_exceptions_only_leaves_out_audit_samples_and_holds_nothing(tmp_path: Path) -> None:
    base = BASE.replace('"content-pipeline.events" = 0.05', '"content-pipeline.events" = 1.0')  # sample every post
    (tmp_path / "detection.toml").write_text(
        base + '\n[review."content-pipeline.events".contoso]\nmode = "exceptions_only"\n'
    )
    config = load_detection_config(tmp_path / "detection.toml")
    assert rules_of(config, content()) == ["claim_verification"]
    assert rules_of(config, content(client="northwind")) == ["audit_sample", "claim_verification"]


def test_sample_sets_the_clients_audit_rate(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        '[review."content-pipeline.events".contoso]\nmode = "sample"\nrate = 1.0\n'
        '[review."content-pipeline.events".fabrikam]\nmode = "sample"\nrate = 0\n',
    )
    ids = [f"s-{i}" for i in range(50)]
    assert all("audit_sample" in rules_of(config, content(event_id=i, model_confidence=0.99)) for i in ids)
    assert not any("audit_sample" in rules_of(config, content("fabrikam", i, model_confidence=0.0)) for i in ids)


def test_uncertain_holds_below_max_confidence_only(tmp_path: Path) -> None:
    config = config_of(tmp_path, '[review."content-pipeline.events".contoso]\nmode = "uncertain"\nmax_confidence = 0.4')
    assert "approval_gate" in rules_of(config, content(model_confidence=0.39, product_claims=[]))
    assert "approval_gate" not in rules_of(config, content(model_confidence=0.4, product_claims=[]))


def test_risk_holds_on_severity_or_money_at_risk(tmp_path: Path) -> None:
    config = config_of(
        tmp_path,
        '[review."content-pipeline.events".contoso]\nmode = "risk"\nmin_severity = "critical"\n'
        '[review."bid-management.events".northwind]\nmode = "risk"\nmin_amount = 100\n',
    )
    assert "approval_gate" not in rules_of(config, content())  # claim_verification is medium
    assert "approval_gate" in rules_of(config, content(brand_safety_score=0.1))  # brand_safety is critical
    bid = json.loads((EXAMPLES_DIR / "bid-adjusted-over-cap.json").read_text())
    bid["data"]["client_id"] = "northwind"
    held = [r.rule_id for r in records_of(config, json.dumps(bid).encode(), topics.BIDS)]
    (over,) = [r for r in records_of(config, json.dumps(bid).encode(), topics.BIDS) if r.rule_id == "bid_over_cap"]
    assert over.impact is not None
    assert ("approval_gate" in held) == (over.impact.amount >= 100)


@pytest.mark.parametrize(
    ("scheduled", "problem"),
    [
        ("2026-12-08T10:00:00", "has no UTC offset"),
        ("next tuesday", "is not an RFC 3339 time"),
        (1765180800, "is not an RFC 3339 string"),
        (["2026-12-08T10:00:00Z"], "is not an RFC 3339 string"),
        ("2026-12-08T10:00:00Z" + " " * 100, "is not an RFC 3339 string"),
    ],
)
def test_an_unreadable_scheduled_time_gives_no_deadline_and_says_why(
    tmp_path: Path, scheduled: Any, problem: str
) -> None:
    config = config_of(tmp_path, '[review."content-pipeline.events".contoso]\nmode = "approve_all"')
    (item,) = [r for r in records_of(config, content(scheduled_at=scheduled)) if r.rule_id == "approval_gate"]
    assert item.deadline is None
    assert item.observed["scheduled_at"] is None
    assert problem in item.observed["scheduled_at_problem"]


def test_the_deadline_is_the_scheduled_time_minus_the_margin() -> None:
    when, problem = scheduled_time({"data": {"scheduled_at": "2026-12-08T10:00:00Z"}})
    assert problem is None and when == datetime(2026, 12, 8, 10, tzinfo=UTC)
    policy = ApproveAll(mode="approve_all", deadline_margin_minutes=90)
    assert release_deadline(when, policy) == when - timedelta(minutes=90)
    assert release_deadline(None, policy) is None
    assert scheduled_time({"data": {}}) == (None, None)
    assert scheduled_time({"data": "not an object"}) == (None, None)
    early, _ = scheduled_time({"data": {"scheduled_at": "0001-01-01T00:10:00+00:00"}})
    assert release_deadline(early, policy) is None  # would fall before year 1


@pytest.mark.parametrize("seconds", [-1, "soon", float("nan")])
def test_a_bad_escalation_lead_refuses_to_start_naming_the_setting(seconds: Any) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(approval_escalate_before_seconds=seconds)
    assert "approval_escalate_before_seconds" in str(refused.value)
