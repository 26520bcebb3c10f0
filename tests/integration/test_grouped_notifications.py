"""Grouped notifications (issue 28 item 3) against real local receivers, on a FakeClock: a storm of
300 openings in one queue is one message per group and receiver at group_wait, listing its
exceptions; nothing is sent again after an API restart; a later opening waits for group_interval.
Alertmanager receivers are not grouped (Alertmanager groups itself). An opening an inhibit rule
holds back is told once its inhibitor resolves."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import NotificationGroupMemberRow, NotificationRow
from loopgate.resolution_api.notifications.config import NotificationsConfigError, load_notifications
from loopgate_schemas.notifications import notification_id_for
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.receivers import Receivers
from tests.integration.test_api_notifications import notify_settings


def _toml(receivers: Receivers) -> str:
    return f"""
[receivers.hook]
kind = "webhook"
url = "{receivers.url("/hook")}"
[receivers.chat]
kind = "slack"
url = "{receivers.url("/chat")}"
[queues.default]
receivers = ["hook", "chat"]
group_by = ["rule", "client"]
group_wait = 30
group_interval = 300
"""


async def _members(api: Api) -> int:
    async with api.services.db.read() as session:
        return int(
            (await session.execute(sa.select(sa.func.count()).select_from(NotificationGroupMemberRow))).scalar_one()
        )


async def _until_members(api: Api, count: int) -> None:
    deadline = time.monotonic() + 30
    while await _members(api) < count:
        assert time.monotonic() < deadline, await _members(api)
        api.services.notifier.wake()
        await asyncio.sleep(0.05)


async def _until_sent(api: Api, count: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        async with api.services.db.read() as session:
            stmt = sa.select(sa.func.count()).where(
                NotificationRow.event == "grouped", NotificationRow.sent_at.is_not(None)
            )
            sent = int((await session.execute(stmt)).scalar_one())
        if sent >= count:
            return
        assert time.monotonic() < deadline, sent
        await asyncio.sleep(0.05)


async def test_a_storm_is_one_message_per_group_and_receiver_exactly_once_through_a_restart(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, _toml(receivers))
    clock = FakeClock(dt.datetime.now(dt.UTC))
    at = clock().isoformat()
    storm = [record(client_id="northwind", detected_at=at) for _ in range(250)]
    storm += [record(client_id="lumen", detected_at=at) for _ in range(50)]
    async with api_factory(settings, clock) as api:
        for start in range(0, 300, 100):
            answer = await api.http.post(
                "/v1/exceptions/batch", json={"records": storm[start : start + 100]}, headers=api.auth("service")
            )
            assert answer.status_code == 200, answer.text
        await _until_members(api, 600)  # 300 exceptions, two receivers
        await asyncio.sleep(0.3)
        assert receivers.accepted("/hook") == [] and receivers.accepted("/chat") == []  # group_wait

        clock.advance(30)
        api.services.notifier.wake()
        hooks = await receivers.wait_for("/hook", 2)
        chats = await receivers.wait_for("/chat", 2)
        await _until_sent(api, 4)  # recorded as sent before the restart (a send cut by a stop is resent, same id)
    by_client = {h.body["data"]["group"]["client"]: h.body for h in hooks}
    assert {c: len(b["data"]["exceptions"]) for c, b in by_client.items()} == {"northwind": 250, "lumen": 50}
    assert {e["exception_id"] for e in by_client["lumen"]["data"]["exceptions"]} == {
        r["exception_id"] for r in storm[250:]
    }
    assert by_client["lumen"]["type"] == "loopgate.exceptions.grouped"
    assert by_client["lumen"]["data"]["exceptions"][0]["url"].startswith("https://loopgate.example/console/exceptions/")
    texts = sorted(c.body["text"].splitlines()[0] for c in chats)
    assert texts == [
        "250 new exceptions (client=northwind, rule=bid_over_cap)",
        "50 new exceptions (client=lumen, rule=bid_over_cap)",
    ]
    assert "... and 230 more" in next(c.body["text"] for c in chats if "250 new" in c.body["text"])

    async with api_factory(settings, clock) as api:  # the API restarted: nothing is told twice
        clock.advance(10)
        api.services.notifier.wake()
        await asyncio.sleep(0.5)
        assert len(receivers.accepted("/hook")) == 2 and len(receivers.accepted("/chat")) == 2

        late = await api.create(client_id="lumen")
        await _until_members(api, 602)
        clock.advance(200)  # 210 s after the group's message: within group_interval
        api.services.notifier.wake()
        await asyncio.sleep(0.5)
        assert len(receivers.accepted("/hook")) == 2
        clock.advance(90)  # 300 s after it
        api.services.notifier.wake()
        third = (await receivers.wait_for("/hook", 3))[2]
    assert [e["exception_id"] for e in third.body["data"]["exceptions"]] == [late["id"]]
    assert third.body["id"] != by_client["lumen"]["id"]
    assert len({json.dumps(h.body["id"]) for h in receivers.accepted("/hook")}) == 3


async def test_an_inhibited_opening_is_told_only_once_its_inhibitor_resolves(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = f"""
[receivers.hook]
kind = "webhook"
url = "{receivers.url("/hook")}"
[queues.default]
receivers = ["hook"]
[[inhibit_rules]]
source = {{ rule = ["overspend"], severity = ["critical"] }}
target = {{ severity = ["info", "low", "medium"] }}
equal = ["client", "subject"]
"""
    settings = notify_settings(api_settings, tmp_path, toml)
    async with api_factory(settings) as api:
        overspend = await api.create(rule_id="overspend", severity="critical", subject="campaign-7")
        await receivers.wait_for("/hook", 1)
        noise = await api.create(rule_id="pacing_off", severity="low", subject="campaign-7")
        elsewhere = await api.create(rule_id="pacing_off", severity="low", subject="campaign-8")
        told = await receivers.wait_for("/hook", 2)
        await asyncio.sleep(0.5)  # the held one stays held
        assert [h.body["subject"] for h in receivers.accepted("/hook")] == [overspend["id"], elsewhere["id"]]
        assert len(told) == 2

        resolved = await api.act(overspend["id"], "resolve", {"decision": "confirmed", "reason": "cap raised"})
        assert resolved.status_code == 200, resolved.text
        api.services.notifier.wake()
        third = (await receivers.wait_for("/hook", 3))[2]
    assert (third.body["subject"], third.body["type"]) == (noise["id"], "loopgate.exception.opened")
    assert third.body["id"] == notification_id_for(noise["id"], "opened", "hook")


def test_a_hostile_inhibit_rule_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "n.toml"
    path.write_text('[[inhibit_rules]]\nsource = { rule = ["x"] }\ntarget = { rule = ["y"] }\nequal = ["team"]\n')
    with pytest.raises(NotificationsConfigError, match=r"inhibit_rules\.0\.equal\.0: Input should be"):
        load_notifications(path)


async def test_a_firing_group_is_told_again_every_repeat_interval_once_through_a_restart(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = f"""
[receivers.hook]
kind = "webhook"
url = "{receivers.url("/hook")}"
[receivers.chat]
kind = "slack"
url = "{receivers.url("/chat")}"
[queues.default]
receivers = ["hook", "chat"]
group_by = ["rule"]
group_wait = 30
group_interval = 300
repeat_interval = 600
"""
    settings = notify_settings(api_settings, tmp_path, toml)
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with api_factory(settings, clock) as api:
        first = await api.create(client_id="northwind")
        second = await api.create(client_id="lumen")
        await _until_members(api, 4)
        clock.advance(30)
        api.services.notifier.wake()
        told = (await receivers.wait_for("/hook", 1))[0]
        await receivers.wait_for("/chat", 1)
        assert {e["exception_id"] for e in told.body["data"]["exceptions"]} == {first["id"], second["id"]}
        assert told.body["data"]["repeat"] is False
        resolved = await api.act(first["id"], "resolve", {"decision": "confirmed", "reason": "cap raised"})
        assert resolved.status_code == 200, resolved.text

        clock.advance(599)  # 1 s before repeat_interval after the message
        api.services.notifier.wake()
        await asyncio.sleep(0.5)
        assert len(receivers.accepted("/hook")) == 1 and len(receivers.accepted("/chat")) == 1
        clock.advance(1)  # group_wait + repeat_interval
        api.services.notifier.wake()
        repeat = (await receivers.wait_for("/hook", 2))[1]
        chat = (await receivers.wait_for("/chat", 2))[1]
        await _until_sent(api, 4)
    assert [e["exception_id"] for e in repeat.body["data"]["exceptions"]] == [second["id"]]
    assert repeat.body["data"]["repeat"] is True
    assert repeat.body["id"] == notification_id_for('{"rule":"bid_over_cap"}', "group:2", "hook")
    assert chat.body["text"].splitlines()[0] == "still firing: 1 exception (rule=bid_over_cap)"

    async with api_factory(settings, clock) as api:  # restarted: the repeat is not told twice
        clock.advance(10)
        api.services.notifier.wake()
        await asyncio.sleep(0.5)
        assert len(receivers.accepted("/hook")) == 2 and len(receivers.accepted("/chat")) == 2
        resolved = await api.act(second["id"], "resolve", {"decision": "confirmed", "reason": "fixed"})
        assert resolved.status_code == 200, resolved.text
        clock.advance(1200)  # two repeat_intervals later, all resolved: nothing to tell
        api.services.notifier.wake()
        await asyncio.sleep(0.5)
        async with api.services.db.read() as session:
            grouped = (
                await session.execute(sa.select(sa.func.count()).where(NotificationRow.event == "grouped"))
            ).scalar_one()
    assert grouped == 4
    assert len(receivers.accepted("/hook")) == 2 and len(receivers.accepted("/chat")) == 2
