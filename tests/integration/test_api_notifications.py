"""Notifications (issue 16 items 2 and 3) against real local HTTP receivers: each notification
reaches each receiver once, with its stable id, through a restart, a failing and a slow receiver;
grouped occurrences and severities below a queue's minimum are not sent; a flapping fingerprint
is rate limited; Alertmanager gets labels, startsAt/endsAt, generatorURL and the resolved alert;
Slack a readable message with the link; escalation levels tell the next receiver on a FakeClock."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import NotificationRow
from loopgate.resolution_api.notifications.config import NotificationsConfigError, load_notifications
from loopgate_schemas.notifications import notification_id_for
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import Api, ApiFactory, record
from tests.fixtures.clock import FakeClock
from tests.fixtures.receivers import Receivers

PUBLIC = "https://loopgate.example"


def notify_settings(api_settings: Settings, tmp_path: Path, toml: str, **overrides: Any) -> Settings:
    path = tmp_path / "notifications.toml"
    path.write_text(toml)
    return api_settings.model_copy(
        update={
            "notifications_file": path,
            "public_url": PUBLIC,
            "notify_interval_seconds": 0.05,
            "notify_retry_initial_seconds": 0.1,
            "notify_retry_max_seconds": 0.4,
            **overrides,
        }
    )


def one_hook(r: Receivers) -> str:
    return f'[receivers.hook]\nkind = "webhook"\nurl = "{r.url("/hook")}"\n[queues.default]\nreceivers = ["hook"]\n'


def three_kinds(r: Receivers, min_severity: str = "info") -> str:
    return f"""
[receivers.hook]
kind = "webhook"
url = "{r.url("/hook")}"
[receivers.chat]
kind = "slack"
url = "{r.url("/chat")}"
[receivers.am]
kind = "alertmanager"
url = "{r.url("/am")}"
[queues.default]
receivers = ["hook", "chat", "am"]
min_severity = "{min_severity}"
"""


async def rows_of(api: Api, exception_id: str) -> list[NotificationRow]:
    async with api.services.db.read() as session:
        stmt = sa.select(NotificationRow).where(NotificationRow.exception_id == exception_id)
        return list((await session.execute(stmt.order_by(NotificationRow.id))).scalars())


async def settled(api: Api, exception_id: str, count: int, within: float = 20.0) -> list[NotificationRow]:
    """The exception's notifications once there are `count`, each sent or set aside."""

    async def all_settled() -> list[NotificationRow]:
        rows = await rows_of(api, exception_id)
        assert len(rows) == count and all(r.sent_at or r.set_aside_at for r in rows), [
            (r.receiver, r.event, r.sent_at, r.last_error) for r in rows
        ]
        return rows

    return await eventually_async(all_settled, timeout=within)


async def test_a_critical_exception_reaches_each_receiver_once_through_a_restart(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, three_kinds(receivers))
    receivers.fail_first["/hook"] = 4  # down for a while, across the restart
    async with api_factory(settings) as api:
        created = await api.create(severity="critical", summary="Overspend on li-1")
        exception_id = created["id"]
        await receivers.wait_for("/hook", 2, attempts=True)
    async with api_factory(settings) as api:  # restarted: the outbox still holds what was not sent
        await receivers.wait_for("/hook", 1)
        await receivers.wait_for("/chat", 1)
        await receivers.wait_for("/am/api/v2/alerts", 1)
        await settled(api, exception_id, 3)

        hook = receivers.accepted("/hook")
        assert len(hook) == 1 and len(receivers.attempts("/hook")) == 5
        event = hook[0].body
        assert event["id"] == notification_id_for(exception_id, "opened", "hook")
        assert hook[0].headers["Content-Type"] == "application/cloudevents+json"
        assert hook[0].headers["X-Loopgate-Notification-Id"] == event["id"]
        assert (event["specversion"], event["type"], event["subject"]) == (
            "1.0",
            "loopgate.exception.opened",
            exception_id,
        )
        assert event["data"]["url"] == f"{PUBLIC}/console/exceptions/{exception_id}"
        assert event["data"]["severity"] == "critical" and event["data"]["queue"] == "default"

        text = receivers.accepted("/chat")[0].body["text"]
        assert f"<{PUBLIC}/console/exceptions/{exception_id}|" in text
        assert "[CRITICAL] bid_over_cap opened" in text and "Overspend on li-1" in text

        [alert] = receivers.accepted("/am/api/v2/alerts")[0].body
        assert alert["labels"] == {
            "alertname": "LoopgateException",
            "exception_id": exception_id,
            "rule": "bid_over_cap",
            "severity": "critical",
            "client": "northwind",
            "queue": "default",
        }
        assert alert["generatorURL"] == f"{PUBLIC}/console/exceptions/{exception_id}"
        assert dt.datetime.fromisoformat(alert["startsAt"]) == dt.datetime.fromisoformat(created["first_seen"])
        assert dt.datetime.fromisoformat(alert["endsAt"]) > dt.datetime.now(dt.UTC) + dt.timedelta(days=6)

        resolved = await api.act(exception_id, "resolve", {"decision": "confirmed", "reason": "real overspend"})
        assert resolved.status_code == 200, resolved.text
        [_, ended] = await receivers.wait_for("/am/api/v2/alerts", 2)
        [ended_alert] = ended.body
        assert ended_alert["labels"] == alert["labels"]
        assert dt.datetime.fromisoformat(ended_alert["endsAt"]) == dt.datetime.fromisoformat(
            resolved.json()["resolution"]["resolved_at"]
        )
        await settled(api, exception_id, 4)
        # webhook and Slack hear nothing of a resolution (the contract's types are opened, escalated,
        # sla_breached)
        assert len(receivers.accepted("/hook")) == 1 and len(receivers.accepted("/chat")) == 1

        history = (await api.http.get(f"/v1/exceptions/{exception_id}/history", headers=api.auth("operator"))).json()
        items = history["items"] if isinstance(history, dict) else history
        told = sorted((h["fields"]["receiver"], h["fields"]["event"]) for h in items if h["action"] == "notified")
        assert told == [("am", "opened"), ("am", "resolved"), ("chat", "opened"), ("hook", "opened")]
    await asyncio.sleep(0.3)  # nothing more arrives after the app stopped and nothing was resent
    assert len(receivers.accepted("/hook")) == 1 and len(receivers.accepted("/am/api/v2/alerts")) == 2


async def test_retries_back_off_and_keep_the_receivers_order(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = one_hook(receivers)
    settings = notify_settings(api_settings, tmp_path, toml)
    receivers.fail_first["/hook"] = 4
    async with api_factory(settings) as api:
        first = (await api.create())["id"]
        second = (await api.create())["id"]
        got = await receivers.wait_for("/hook", 2)
        assert [r.body["subject"] for r in got] == [first, second]
        tries = [r.at for r in receivers.attempts("/hook")]
        waits = [b - a for a, b in itertools.pairwise(tries)]
        # waits double from 0.1 s, capped at 0.4 s (each at least its backoff; scheduling only adds)
        assert [w >= b * 0.9 for w, b in zip(waits[:4], [0.1, 0.2, 0.4, 0.4], strict=True)] == [True] * 4
        assert max(waits[:4]) < 1.5
        [row] = await settled(api, first, 1)
        assert row.attempts == 5 and row.last_error is None


async def test_a_slow_receiver_delays_nobody_else(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, three_kinds(receivers))
    receivers.delay["/chat"] = 1.0
    async with api_factory(settings) as api:
        ids = [(await api.create(severity="critical"))["id"] for _ in range(3)]
        await receivers.wait_for("/hook", 3, within=2.5)
        assert len(receivers.accepted("/chat")) <= 1  # still working through its first ones
        slow = await receivers.wait_for("/chat", 3, within=15)
        assert [r.body["text"].count(i) > 0 for r, i in zip(slow, ids, strict=True)] == [True] * 3


async def test_grouped_occurrences_and_low_severities_are_not_notified(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, three_kinds(receivers, min_severity="high"))
    async with api_factory(settings) as api:
        medium = (await api.create(severity="medium"))["id"]
        high = await api.create(severity="high", fingerprint="bid_over_cap:li-grouped")
        for _ in range(3):
            again = await api.http.post(
                "/v1/exceptions",
                json=record(severity="high", fingerprint="bid_over_cap:li-grouped"),
                headers=api.auth("service"),
            )
            assert again.headers["Loopgate-Result"] == "grouped"
        await settled(api, high["id"], 3)
        await asyncio.sleep(0.3)
        assert await rows_of(api, medium) == []
        assert len(receivers.accepted("/hook")) == 1


async def test_a_flapping_fingerprint_is_rate_limited_per_receiver(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = one_hook(receivers)
    settings = notify_settings(api_settings, tmp_path, toml, notify_flap_max=2, notify_flap_window_seconds=600)
    clock = FakeClock()
    async with api_factory(settings, clock) as api:
        ids = []
        for _ in range(4):  # opens, is resolved, opens again...
            exception_id = (await api.create(fingerprint="bid_over_cap:li-flap"))["id"]
            ids.append(exception_id)
            await settled(api, exception_id, 1)
            await api.act(exception_id, "resolve", {"decision": "dismissed", "reason": "flapping"})
            clock.advance(60)
        reasons = [(await rows_of(api, i))[0].set_aside_reason for i in ids]
        assert reasons == [None, None, "rate_limited", "rate_limited"]
        assert [r.body["subject"] for r in receivers.accepted("/hook")] == ids[:2]
        clock.advance(600)  # the window has passed: told again
        exception_id = (await api.create(fingerprint="bid_over_cap:li-flap"))["id"]
        await receivers.wait_for("/hook", 3)
        assert receivers.accepted("/hook")[2].body["subject"] == exception_id


async def test_escalation_levels_tell_the_next_receiver_and_the_history_shows_it(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = f"""
[receivers.team]
kind = "webhook"
url = "{receivers.url("/team")}"
[receivers.lead]
kind = "webhook"
url = "{receivers.url("/lead")}"
[receivers.director]
kind = "slack"
url = "{receivers.url("/director")}"
[queues.default]
receivers = ["team"]
[[queues.default.escalation]]
after_seconds = 600
when = "unclaimed"
receivers = ["lead"]
[[queues.default.escalation]]
after_seconds = 1800
when = "unresolved"
receivers = ["director"]
"""
    settings = notify_settings(api_settings, tmp_path, toml)
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        exception_id = (await api.create(severity="low", detected_at=start.isoformat()))["id"]
        await receivers.wait_for("/team", 1)
        clock.advance(500)
        await api.services.sweeper.sweep()
        clock.advance(200)  # 700 s unclaimed: level 1
        await api.services.sweeper.sweep()
        [lead] = await receivers.wait_for("/lead", 1)
        assert lead.body["type"] == "loopgate.exception.escalated"
        assert lead.body["data"]["level"] == 1
        assert lead.body["id"] == notification_id_for(exception_id, "level:1", "lead")
        assert (await api.act(exception_id, "claim", {})).status_code == 200
        clock.advance(1200)  # 1900 s, claimed but unresolved: level 2
        await api.services.sweeper.sweep()
        await api.services.sweeper.sweep()  # a second pass tells nobody again
        [director] = await receivers.wait_for("/director", 1)
        assert "escalation level 2" in director.body["text"]
        await settled(api, exception_id, 3)

        history = (await api.http.get(f"/v1/exceptions/{exception_id}/history", headers=api.auth("operator"))).json()
        items = history["items"] if isinstance(history, dict) else history
        levels = [
            (h["fields"]["level"], h["fields"]["receivers"], h["at"])
            for h in items
            if h["action"] == "escalation_level"
        ]
        assert [(lv, rc) for lv, rc, _ in levels] == [(1, ["lead"]), (2, ["director"])]
        assert dt.datetime.fromisoformat(levels[0][2]) == start + dt.timedelta(seconds=700)
        told = [(h["fields"]["receiver"], h["fields"]["level"]) for h in items if h["action"] == "notified"]
        assert told == [("team", None), ("lead", 1), ("director", 2)]
        await asyncio.sleep(0.3)
        assert len(receivers.accepted("/lead")) == 1 and len(receivers.accepted("/director")) == 1


async def test_an_sla_breach_and_an_escalation_are_notified(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = one_hook(receivers)
    settings = notify_settings(api_settings, tmp_path, toml)
    start = dt.datetime.now(dt.UTC)
    clock = FakeClock(start)
    async with api_factory(settings, clock) as api:
        breached = (await api.create(severity="critical", detected_at=start.isoformat()))["id"]
        escalated = (await api.create(severity="low", detected_at=start.isoformat()))["id"]
        assert (await api.act(escalated, "escalate", {"reason": "needs finance"})).status_code == 200
        clock.advance(16 * 60)  # past critical's 15 min ack SLA
        await api.services.sweeper.sweep()
        got = await receivers.wait_for("/hook", 4)
        kinds = sorted((r.body["subject"], r.body["type"]) for r in got)
        assert kinds == sorted(
            [
                (breached, "loopgate.exception.opened"),
                (breached, "loopgate.exception.sla_breached"),
                (escalated, "loopgate.exception.opened"),
                (escalated, "loopgate.exception.escalated"),
            ]
        )
        assert next(r for r in got if r.body["type"].endswith("sla_breached")).body["data"]["sla"] == "ack"


async def test_a_clients_own_receivers_hear_of_that_client_alone(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = f"""
[receivers.agency]
kind = "webhook"
url = "{receivers.url("/agency")}"
[receivers.northwind-chat]
kind = "slack"
clients = ["northwind"]
url = "{receivers.url("/northwind")}"
[receivers.contoso-hook]
kind = "webhook"
clients = ["contoso"]
url = "{receivers.url("/contoso")}"
[queues.default]
receivers = ["agency"]
[queues.reviewers-northwind]
receivers = ["northwind-chat", "contoso-hook"]  # a careless copy: contoso's hook must still hear nothing
[queues.reviewers-contoso]
receivers = ["contoso-hook"]
"""
    claim = {"rule_id": "claim_verification", "kind": "policy", "severity": "medium", "threshold": None}
    async with api_factory(notify_settings(api_settings, tmp_path, toml)) as api:
        northwind = (await api.create(**claim, client_id="northwind", summary="northwind claim"))["id"]
        bid = (await api.create(client_id="northwind", severity="high"))["id"]
        await settled(api, northwind, 1)
        await settled(api, bid, 1)
        contoso = (await api.create(**claim, client_id="contoso", summary="contoso claim"))["id"]
        await settled(api, contoso, 1)

        told = {(r.receiver, r.exception_id) for i in (northwind, bid, contoso) for r in await rows_of(api, i)}

    assert told == {("northwind-chat", northwind), ("agency", bid), ("contoso-hook", contoso)}
    assert [northwind in m.body["text"] for m in receivers.accepted("/northwind")] == [True]
    assert all(contoso in m.body["data"]["exception_id"] for m in receivers.accepted("/contoso"))


@pytest.mark.parametrize(
    ("clients", "problem"), [("[]", "clients"), ('["a b"]', "clients.0"), ('"northwind"', "clients")]
)
def test_a_receivers_odd_clients_are_refused_at_start_naming_the_key(
    tmp_path: Path, clients: str, problem: str
) -> None:
    path = tmp_path / "n.toml"
    path.write_text(f'[receivers.x]\nkind = "webhook"\nurl = "https://x.example/h"\nclients = {clients}\n')

    with pytest.raises(NotificationsConfigError) as refused:
        load_notifications(path)

    assert f"receivers.x.{problem}" in str(refused.value)
