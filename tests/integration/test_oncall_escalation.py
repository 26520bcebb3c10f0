"""People on call (issue 28 item 2) against real local receivers: an escalation level reaches the
person on call at the moment it is reached (a hand-off inside the escalation, a day after the end
of British Summer Time, on a FakeClock), through the receiver carrying that person's channel;
GET /v1/oncall tells who is on call now; a level naming nobody refuses to start."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from loopgate.common.settings import Settings
from loopgate.resolution_api.notifications.config import NotificationsConfigError, load_notifications
from loopgate.resolution_api.schedules.config import load_schedules
from loopgate.resolution_api.schedules.targets import check_escalation_targets
from loopgate_schemas.notifications import notification_id_for
from tests.fixtures.api import ApiFactory
from tests.fixtures.clock import FakeClock
from tests.fixtures.receivers import Receivers
from tests.integration.test_api_notifications import notify_settings, settled
from tests.integration.test_console import sign_in

SCHEDULES = """
[people.alice]
name = "Alice Martin"
channels = [{ kind = "chat", address = "<@UALICE>", receiver = "alice-chat" }]
[people.bob]
name = "Bob Chen"
channels = [
    { kind = "pagerduty", address = "R0UTINGKEYBOB", receiver = "bob-pager" },
    { kind = "email", address = "bob@example.com" },
]
[schedules.ops]
time_zone = "Europe/London"
[[schedules.ops.layers]]
name = "primary"
rotation = "daily"
start = 2026-10-24
handoff = "09:00"
people = ["alice", "bob"]
"""


def _notifications(receivers: Receivers) -> str:
    return f"""
[receivers.team]
kind = "webhook"
url = "{receivers.url("/team")}"
[receivers.alice-chat]
kind = "slack"
url = "{receivers.url("/alice")}"
[receivers.bob-pager]
kind = "webhook"
url = "{receivers.url("/bob")}"
[queues.default]
receivers = ["team"]
[[queues.default.escalation]]
after_seconds = 120
oncall = ["ops"]
[[queues.default.escalation]]
after_seconds = 600
when = "unresolved"
oncall = ["ops"]
"""


async def test_an_escalation_reaches_whoever_is_on_call_when_each_level_is_reached(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    (tmp_path / "schedules.toml").write_text(SCHEDULES)
    settings = notify_settings(
        api_settings, tmp_path, _notifications(receivers), schedules_file=tmp_path / "schedules.toml"
    )
    # Sunday 25 October 2026, 08:55 GMT: British Summer Time ended at 02:00, so the 09:00 hand-off
    # from alice to bob is at 09:00 UTC (it was 08:00 UTC the day before)
    start = dt.datetime(2026, 10, 25, 8, 55, tzinfo=dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        now = (await api.http.get("/v1/oncall", headers=api.auth("operator"))).json()
        assert now["items"] == [
            {
                "schedule": "ops",
                "person": "alice",
                "name": "Alice Martin",
                "source": "layer:0",
                "layer": "primary",
                "until": "2026-10-25T09:00:00Z",
                "channels": [{"kind": "chat", "address": "<@UALICE>"}],
            }
        ]
        exception_id = (await api.create(severity="low", detected_at=start.isoformat()))["id"]
        await receivers.wait_for("/team", 1)
        clock.advance(150)  # 08:57:30: level 1, alice's turn
        await api.services.sweeper.sweep()
        [alice] = await receivers.wait_for("/alice", 1)
        assert alice.body["text"].startswith("<@UALICE> [LOW] ")  # mentioned in the team's chat
        assert "escalation level 1" in alice.body["text"]
        clock.advance(450)  # 09:05: level 2, bob took over at 09:00
        await api.services.sweeper.sweep()
        [bob] = await receivers.wait_for("/bob", 1)
        assert bob.body["id"] == notification_id_for(exception_id, "level:2", "bob-pager")
        assert bob.body["data"]["level"] == 2
        await settled(api, exception_id, 3)
        assert receivers.accepted("/alice") == [alice]  # alice is not paged for level 2

        history = (await api.http.get(f"/v1/exceptions/{exception_id}/history", headers=api.auth("operator"))).json()
        items = history["items"] if isinstance(history, dict) else history
        levels = [h["fields"] for h in items if h["action"] == "escalation_level"]
        assert [(f["level"], f["receivers"], [p["person"] for p in f["people"]]) for f in levels] == [
            (1, ["alice-chat"], ["alice"]),
            (2, ["bob-pager"], ["bob"]),
        ]
        assert levels[1]["people"][0]["channels"] == [
            {"kind": "pagerduty", "address": "R0UTINGKEYBOB", "receiver": "bob-pager"},
            {"kind": "email", "address": "bob@example.com", "receiver": None},
        ]
        later = (await api.http.get("/v1/oncall", headers=api.auth("admin"))).json()
        assert [(i["person"], i["until"]) for i in later["items"]] == [("bob", "2026-10-26T09:00:00Z")]
        asked = await api.http.get("/v1/oncall", params={"at": "2026-10-25T08:00:00"}, headers=api.auth("admin"))
        assert asked.status_code == 422  # a moment without its offset is refused


@pytest.mark.parametrize(
    ("level", "channel_receiver", "named"),
    [
        ('oncall = ["nights"]', "team", "queues.default.escalation.0.oncall.0: no schedule named 'nights'"),
        ('people = ["zed"]', "team", "queues.default.escalation.0.people.0: no person named 'zed'"),
        ('oncall = ["ops"]', "gone", "people.alice.channels.0.receiver: no receiver named 'gone'"),
    ],
)
def test_a_level_or_channel_naming_nobody_refuses_to_start(
    tmp_path: Path, level: str, channel_receiver: str, named: str
) -> None:
    path = tmp_path / "n.toml"
    path.write_text(
        '[receivers.team]\nkind = "webhook"\nurl = "https://x.example/h"\n'
        f"[queues.default]\n[[queues.default.escalation]]\nafter_seconds = 60\n{level}\n"
    )
    (tmp_path / "s.toml").write_text(SCHEDULES.replace('"alice-chat"', f'"{channel_receiver}"'))
    config, _ = load_notifications(path)
    with pytest.raises(NotificationsConfigError) as refused:
        check_escalation_targets(config, load_schedules(tmp_path / "s.toml"), path)
    assert named in str(refused.value)


def test_a_level_that_tells_nobody_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text("[queues.default]\n[[queues.default.escalation]]\nafter_seconds = 60\n")
    with pytest.raises(NotificationsConfigError, match=r"queues\.default\.escalation\.0: a level tells someone"):
        load_notifications(path)


async def test_the_console_shows_who_is_on_call_at_the_apps_clock(
    api_factory: ApiFactory, api_settings: Settings, tmp_path: Path
) -> None:
    text = SCHEDULES.replace('name = "Bob Chen"', 'name = "Bob <script>"')
    text = text.replace(', receiver = "alice-chat"', "").replace(', receiver = "bob-pager"', "")
    (tmp_path / "schedules.toml").write_text(text)
    settings = api_settings.model_copy(
        update={"schedules_file": tmp_path / "schedules.toml", "console_secure_cookie": False}
    )
    clock = FakeClock(dt.datetime(2026, 10, 25, 9, 30, tzinfo=dt.UTC))
    async with api_factory(settings, clock) as api:
        await sign_in(api)
        page = await api.http.get("/console/oncall")
    assert page.status_code == 200
    row = page.text[page.text.index("<tbody>") : page.text.index("</tbody>")]
    assert "<td>ops</td>" in row
    assert "<b>bob</b> (Bob &lt;script&gt;)" in row
    assert "26 Oct 09:00 UTC" in row
    assert "pagerduty: R0UTINGKEYBOB, email: bob@example.com" in row
