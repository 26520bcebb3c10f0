"""Grouping and inhibition decisions (notifications/grouping.py, pure): a storm is one message per
window, group_wait / group_interval / repeat_interval as Alertmanager applies them, inhibition with
equal labels, and hostile grouping and inhibition tables refused naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from loopgate.common.strict_toml import problems_of
from loopgate.resolution_api.notifications.config import (
    NotificationsConfig,
    NotificationsConfigError,
    load_notifications,
)
from loopgate.resolution_api.notifications.grouping import (
    Firing,
    Grouping,
    GroupState,
    InhibitRule,
    group_key,
    inhibited_by,
    next_message,
)

T0 = dt.datetime(2026, 10, 25, 9, 0, tzinfo=dt.UTC)


def s(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_group_keys_depend_on_the_group_by_labels_alone_in_any_order() -> None:
    grouping = Grouping(group_by=["rule", "client"])
    a = group_key(grouping, {"client": "northwind", "rule": "overspend", "severity": "high"})
    b = group_key(grouping, {"severity": "low", "rule": "overspend", "client": "northwind"})
    assert a == b == '{"client":"northwind","rule":"overspend"}'
    assert group_key(grouping, {"rule": "overspend"}) == '{"client":"","rule":"overspend"}'


def test_a_storm_of_300_openings_in_a_minute_is_one_message_per_window() -> None:
    """A simulated relay that sends when next_message is due: 300 openings, one every 0.2 s."""
    grouping = Grouping(group_by=["rule"], group_wait=30, group_interval=300, repeat_interval=3600)
    joined = [s(i * 0.2) for i in range(300)]
    sent: list[tuple[dt.datetime, int]] = []
    last: dt.datetime | None = None
    told = 0
    for tick in range(0, 4000):
        now = s(tick)
        arrived = sum(1 for t in joined if t <= now)
        state = GroupState(T0, last, new_since_message=arrived > told, firing=True)
        due = next_message(grouping, state)
        if due is not None and due <= now:
            sent.append((now, arrived - told))
            last, told = now, arrived
    # one message at group_wait listing the 151 opened by then, one a group_interval later with the
    # other 149, then, nothing new but still firing, a repeat a repeat_interval after the last
    assert sent == [(s(30), 151), (s(330), 149), (s(3930), 0)]


@pytest.mark.parametrize(
    ("state", "due"),
    [
        (GroupState(T0, None, new_since_message=True, firing=True), s(30)),
        (GroupState(T0, s(30), new_since_message=True, firing=True), s(330)),
        (GroupState(T0, s(30), new_since_message=False, firing=True), s(30 + 14400)),
        (GroupState(T0, s(30), new_since_message=False, firing=False), None),
        (GroupState(T0, None, new_since_message=False, firing=False), None),
    ],
)
def test_the_next_message_follows_alertmanagers_timers(state: GroupState, due: dt.datetime | None) -> None:
    assert next_message(Grouping(group_by=["client"]), state) == due


OVERSPEND_HOLDS_ITS_CAMPAIGNS_NOISE = InhibitRule.model_validate(
    {
        "source": {"rule": ["overspend"], "severity": ["critical"]},
        "target": {"severity": ["info", "low", "medium"]},
        "equal": ["client", "subject"],
    }
)


def labels(**values: str) -> dict[str, str]:
    return {"client": "northwind", "subject": "campaign-7", **values}


def test_a_firing_critical_overspend_holds_back_its_campaigns_lower_noise() -> None:
    firing = [Firing("exc-overspend", labels(rule="overspend", severity="critical"))]
    rules = [OVERSPEND_HOLDS_ITS_CAMPAIGNS_NOISE]
    assert inhibited_by(rules, "exc-pacing", labels(rule="pacing_off", severity="low"), firing) == (0, "exc-overspend")
    # another campaign, another client, a high severity, or the source resolved: told
    assert inhibited_by(rules, "e", labels(rule="pacing_off", severity="low", subject="campaign-8"), firing) is None
    assert inhibited_by(rules, "e", labels(rule="pacing_off", severity="low", client="lumen"), firing) is None
    assert inhibited_by(rules, "e", labels(rule="pacing_off", severity="high"), firing) is None
    assert inhibited_by(rules, "exc-pacing", labels(rule="pacing_off", severity="low"), []) is None


def test_an_exception_never_inhibits_itself() -> None:
    rule = InhibitRule.model_validate({"source": {"rule": ["overspend"]}, "target": {"rule": ["overspend"]}})
    me = labels(rule="overspend", severity="critical")
    assert inhibited_by([rule], "exc-1", me, [Firing("exc-1", me)]) is None
    assert inhibited_by([rule], "exc-2", me, [Firing("exc-1", me)]) == (0, "exc-1")


@pytest.mark.parametrize(
    ("model", "value", "named"),
    [
        (Grouping, {"group_by": []}, "group_by: List should have at least 1 item"),
        (Grouping, {"group_by": ["campaign"]}, "group_by.0: Input should be 'rule'"),
        (Grouping, {"group_by": ["rule", "rule"]}, "a label is named twice"),
        (Grouping, {"group_by": ["rule"], "group_wait": -1}, "group_wait: Input should be greater than or equal"),
        (Grouping, {"group_by": ["rule"], "group_interval": 600, "repeat_interval": 60}, "repeat_interval: must be"),
        (Grouping, {"group_by": ["rule"], "group_window": 60}, "group_window: Extra inputs are not permitted"),
        (InhibitRule, {"source": {}, "target": {"rule": ["x"]}}, "source: an empty matcher matches everything"),
        (InhibitRule, {"source": {"rule": ["x"]}, "target": {"rule": []}}, "target.rule: List should have at least"),
        (InhibitRule, {"source": {"rule": ["x"]}, "target": {"rule": ["y"]}, "equal": ["team"]}, "equal.0: Input"),
        (InhibitRule, {"source": {"severity": ["urgent"]}, "target": {"rule": ["y"]}}, "source.severity.0: Input"),
        (InhibitRule, {"source": {"rule": ["x"]}, "target": {"rule": ["y"]}, "labels": {}}, "labels: Extra inputs"),
    ],
)
def test_a_hostile_grouping_or_inhibition_table_is_refused_naming_the_key(
    model: Any, value: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(value)
    assert named in problems_of(refused.value)


@pytest.mark.parametrize(
    ("queue", "named"),
    [
        ("group_wait = 30\n", "queues.default: group_wait: groups need group_by"),
        ('group_by = ["rule"]\ngroup_interval = 600\nrepeat_interval = 60\n', "repeat_interval: must be at least"),
        ('group_by = ["campaign"]\n', "queues.default.group_by.0: Input should be"),
        ('group_by = ["rule"]\ngroup_window = 60\n', "queues.default.group_window: Extra inputs are not permitted"),
        ('group_by = ["rule"]\ngroup_wait = -1\n', "queues.default.group_wait: Input should be greater than or"),
    ],
)
def test_a_hostile_queue_grouping_refuses_to_start_naming_the_key(tmp_path: Path, queue: str, named: str) -> None:
    path = tmp_path / "n.toml"
    path.write_text(f"[queues.default]\n{queue}")
    with pytest.raises(NotificationsConfigError) as refused:
        load_notifications(path)
    assert named in str(refused.value)


def test_a_queue_without_group_by_is_not_grouped_and_one_with_it_has_alertmanagers_defaults() -> None:
    config = NotificationsConfig.model_validate({"queues": {"a": {}, "b": {"group_by": ["client"], "group_wait": 5}}})
    assert config.queue("a").grouping is None
    assert config.queue("b").grouping == Grouping(group_by=["client"], group_wait=5, group_interval=300)
