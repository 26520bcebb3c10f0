"""Schedules: who is on call at a time (daily and weekly hand-offs in local time across a DST
change, layers, overrides) and hostile schedules files refused naming the key."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from loopgate.resolution_api.notifications.payloads import slack_mention
from loopgate.resolution_api.schedules.config import SchedulesConfig, SchedulesError, load_schedules
from loopgate.resolution_api.schedules.oncall import on_call

UTC = dt.UTC
PEOPLE = """
[people.alice]
name = "Alice"
channels = [{ kind = "chat", address = "<@U1>" }, { kind = "email", address = "alice@example.com" }]
[people.bob]
channels = [{ kind = "pagerduty", address = "R0UTINGKEYBOB" }]
[people.carol]
[people.dan]
"""


def _load(tmp_path: Path, text: str) -> SchedulesConfig:
    path = tmp_path / "schedules.toml"
    path.write_text(text)
    return load_schedules(path)


def _daily(tmp_path: Path, extra: str = "") -> SchedulesConfig:
    return _load(
        tmp_path,
        PEOPLE
        + """
[schedules.ops]
time_zone = "Europe/London"
[[schedules.ops.layers]]
name = "primary"
rotation = "daily"
start = 2026-10-20
handoff = "09:00"
people = ["alice", "bob", "carol"]
"""
        + extra,
    )


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_daily_handoff_keeps_local_time_across_the_end_of_british_summer_time(tmp_path: Path) -> None:
    config = _daily(tmp_path)
    # Saturday 24 October: BST, the 09:00 hand-off is 08:00 UTC
    assert on_call(config, "ops", at("2026-10-24T07:59:00+00:00")).person == "alice"
    saturday = on_call(config, "ops", at("2026-10-24T08:00:00+00:00"))
    assert saturday.person == "bob"
    # Sunday 25 October: clocks went back at 02:00 BST, the hand-off is 09:00 UTC, so bob's turn is 25 hours
    assert saturday.until == at("2026-10-25T09:00:00+00:00")
    assert on_call(config, "ops", at("2026-10-25T08:30:00+00:00")).person == "bob"
    assert on_call(config, "ops", at("2026-10-25T09:00:00+00:00")).person == "carol"
    # before the first hand-off nobody is on call
    assert on_call(config, "ops", at("2026-10-20T07:00:00+00:00")).person is None


def test_weekly_rotation_hands_off_on_the_start_weekday(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        PEOPLE
        + """
[schedules.ops]
time_zone = "America/New_York"
[[schedules.ops.layers]]
rotation = "weekly"
start = 2026-10-26
handoff = "10:30"
people = ["alice", "bob"]
""",
    )
    # Monday 26 October 10:30 EDT = 14:30 UTC; a week on, 2 November is EST: 15:30 UTC
    assert on_call(config, "ops", at("2026-10-26T14:30:00+00:00")).person == "alice"
    assert on_call(config, "ops", at("2026-11-02T15:29:00+00:00")).person == "alice"
    assert on_call(config, "ops", at("2026-11-02T15:30:00+00:00")).person == "bob"
    assert on_call(config, "ops", at("2026-11-09T15:30:00+00:00")).person == "alice"


def test_an_override_wins_for_its_period_and_cuts_the_turn_short(tmp_path: Path) -> None:
    config = _daily(
        tmp_path,
        """
[[schedules.ops.overrides]]
person = "dan"
start = 2026-10-24T18:00:00+01:00
end = 2026-10-24T22:00:00Z
""",
    )
    before = on_call(config, "ops", at("2026-10-24T16:00:00+00:00"))
    assert (before.person, before.until) == ("bob", at("2026-10-24T17:00:00+00:00"))
    during = on_call(config, "ops", at("2026-10-24T17:00:00+00:00"))
    assert (during.person, during.source, during.until) == ("dan", "override", at("2026-10-24T22:00:00+00:00"))
    assert on_call(config, "ops", at("2026-10-24T22:00:00+00:00")).person == "bob"


def test_a_later_layer_wins_in_its_active_hours(tmp_path: Path) -> None:
    config = _daily(
        tmp_path,
        """
[[schedules.ops.layers]]
name = "nights"
rotation = "weekly"
start = 2026-10-19
people = ["dan"]
active = { from = "18:00", to = "08:00" }
""",
    )
    assert on_call(config, "ops", at("2026-10-22T12:00:00+00:00")).person == "carol"  # 13:00 BST, day 3
    night = on_call(config, "ops", at("2026-10-22T22:00:00+00:00"))  # 23:00 BST
    assert (night.person, night.source, night.layer) == ("dan", "layer:1", "nights")
    assert on_call(config, "ops", at("2026-10-23T06:59:00+00:00")).person == "dan"  # 07:59 BST
    assert on_call(config, "ops", at("2026-10-23T07:00:00+00:00")).person == "carol"  # 08:00 BST, before 09:00


SCHEDULE = """
[schedules.ops]
time_zone = "Europe/London"
[[schedules.ops.layers]]
rotation = "daily"
start = 2026-10-20
people = ["alice"]
"""


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (PEOPLE + SCHEDULE + "pager = 1\n", "schedules.ops.layers.0.pager: Extra inputs are not permitted"),
        (PEOPLE.replace('name = "Alice"', 'nickname = "Al"') + SCHEDULE, "people.alice.nickname: Extra inputs"),
        (PEOPLE + SCHEDULE.replace("Europe/London", "Europe/Atlantis"), "schedules.ops.time_zone: 'Europe/Atlantis'"),
        (PEOPLE + SCHEDULE.replace("Europe/London", "../../etc/passwd"), "schedules.ops.time_zone: '../../etc/passwd'"),
        (PEOPLE + SCHEDULE.replace('["alice"]', "[]"), "schedules.ops.layers.0.people: List should have at least 1"),
        (PEOPLE + SCHEDULE.replace('["alice"]', '["zed"]'), "schedules.ops.layers.0.people.0: no person named 'zed'"),
        (PEOPLE + SCHEDULE.replace('"daily"', '"hourly"'), "schedules.ops.layers.0.rotation: Input should be"),
        (PEOPLE + SCHEDULE + 'handoff = "25:00"\n', "schedules.ops.layers.0.handoff: '25:00' is not a local time"),
        (
            PEOPLE
            + SCHEDULE
            + """
[[schedules.ops.overrides]]
person = "bob"
start = 2026-10-24T18:00:00Z
end = 2026-10-25T18:00:00Z
[[schedules.ops.overrides]]
person = "carol"
start = 2026-10-25T17:00:00Z
end = 2026-10-26T18:00:00Z
""",
            "schedules.ops.overrides: overrides 0 and 1 overlap",
        ),
        (
            PEOPLE + SCHEDULE + '[[schedules.ops.overrides]]\nperson = "bob"\nstart = 2026-10-24T18:00:00\n'
            "end = 2026-10-25T18:00:00Z\n",
            "schedules.ops.overrides.0.start: Input should have timezone info",
        ),
        (
            PEOPLE + '[schedules.ops]\ntime_zone = "UTC"\nlayers = []\n',
            "schedules.ops.layers: List should have at least",
        ),
        (PEOPLE.replace('"<@U1>"', '"<@U1>\\nBcc: x"') + SCHEDULE, "people.alice.channels.0.address: an address is"),
        ("[people]\n[schedules\n", "schedules.toml: "),
    ],
)
def test_a_hostile_schedules_file_is_refused_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(SchedulesError) as refused:
        _load(tmp_path, text)
    assert named in str(refused.value)


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("<@U024BE7LH>", "<@U024BE7LH>"),
        ("<!subteam^S0123>", "<!subteam^S0123>"),
        ("<!channel>", "&lt;!channel&gt;"),  # a person's address never pings everyone
        ("<http://evil.example|click>", "&lt;http://evil.example|click&gt;"),
        ("alice", "alice"),
    ],
)
def test_a_chat_address_is_a_mention_only_when_it_is_one_persons_or_groups(address: str, shown: str) -> None:
    assert slack_mention(address) == shown


def test_the_readmes_schedules_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**People on call.**") :]
    example = section[
        section.index("```toml\n") + len("```toml\n") : section.index("```", section.index("```toml") + 7)
    ]
    example = example.replace(', receiver = "team-slack"', "")  # the receiver lives in the notifications file
    for person in ("bob", "carol", "dan"):
        example += f"[people.{person}]\n"
    config = _load(tmp_path, example)
    assert on_call(config, "media-buying", at("2026-12-25T12:00:00+00:00")).person == "bob"  # the override
    assert on_call(config, "media-buying", at("2026-12-01T23:00:00+00:00")).layer == "nights"
