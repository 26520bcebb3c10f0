"""One bad row affects that row alone (issue 23): an exception whose notification cannot be
rendered for one receiver (a date overflow in the Alertmanager alert) is set aside for that
receiver with its reason, counted and listed for an admin; the other receivers still hear of it,
and every other exception reaches every receiver. An event that cannot be expanded at all is set
aside the same way. A receiver that refuses everything is misconfigured, not a run of bad rows."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from prometheus_client import REGISTRY

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import ExceptionRow, NotificationEventRow
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.receivers import Receivers
from tests.integration.test_api_notifications import notify_settings, one_hook, rows_of, settled, three_kinds

FAR_FUTURE = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)


def _count(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def _no_pending_events(api: Api) -> None:
    pending = await _pending_events(api)
    assert pending == 0, f"{pending} notification events still pending"


async def _pending_events(api: Api) -> int:
    async with api.services.db.read() as session:
        pending = sa.and_(NotificationEventRow.expanded_at.is_(None), NotificationEventRow.set_aside_at.is_(None))
        stmt = sa.select(sa.func.count()).select_from(NotificationEventRow).where(pending)
        return int((await session.execute(stmt)).scalar_one())


async def _stored_far_in_the_future(api: Api, exception_id: str) -> None:
    """As a row stored before the API checked times (or by any other door) would be."""
    async with api.services.db.write() as session, session.begin():
        await session.execute(
            sa.update(ExceptionRow)
            .where(ExceptionRow.id == exception_id)
            .values(first_seen=FAR_FUTURE, last_seen=FAR_FUTURE)
        )


async def test_an_unrenderable_notification_is_set_aside_for_its_receiver_alone_and_the_rest_go_on(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    # the relay looks for events only when woken: the bad row is in place before it looks
    settings = notify_settings(api_settings, tmp_path, three_kinds(receivers), notify_interval_seconds=3600)
    before = _count("loopgate_notifications_set_aside_total", {"receiver": "am", "reason": "unrenderable"})
    async with api_factory(settings) as api:
        bad = (await api.create(severity="critical"))["id"]
        good = [(await api.create(severity="critical"))["id"] for _ in range(3)]
        await _stored_far_in_the_future(api, bad)
        assert await _pending_events(api) == 4
        api.services.notifier.wake()

        await receivers.wait_for("/am/api/v2/alerts", 3)
        await receivers.wait_for("/hook", 4)
        await receivers.wait_for("/chat", 4)
        for exception_id in good:
            assert [r.sent_at is not None for r in await settled(api, exception_id, 3)] == [True] * 3
        rows = {r.receiver: r for r in await settled(api, bad, 3)}
        assert rows["hook"].sent_at is not None and rows["chat"].sent_at is not None
        assert rows["am"].sent_at is None and rows["am"].set_aside_at is not None
        assert rows["am"].set_aside_reason is not None
        assert rows["am"].set_aside_reason.startswith("unrenderable: OverflowError")
        assert _count("loopgate_notifications_set_aside_total", {"receiver": "am", "reason": "unrenderable"}) == (
            before + 1
        )
        assert await _pending_events(api) == 0

        listed = await api.http.get("/v1/admin/notifications/set-aside", headers=api.auth("admin"))
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert (item["exception_id"], item["receiver"], item["event"]) == (bad, "am", "opened")
        assert item["reason"].startswith("unrenderable: OverflowError")
        await asyncio.sleep(0.3)
        assert len(receivers.accepted("/am/api/v2/alerts")) == 3  # nothing retried


async def test_an_event_that_cannot_be_expanded_is_set_aside_and_the_events_behind_it_go_on(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_interval_seconds=3600)
    before = _count("loopgate_notification_events_set_aside_total")
    async with api_factory(settings) as api:
        first = (await api.create())["id"]
        async with api.services.db.write() as session, session.begin():
            # an sla_breached event must be keyed sla_breached:<sla>:<n>; this one is not
            await session.execute(
                sa.insert(NotificationEventRow).values(
                    exception_id=first, event="sla_breached", key="garbage", created_at=dt.datetime.now(dt.UTC)
                )
            )
        second = (await api.create())["id"]
        api.services.notifier.wake()
        got = await receivers.wait_for("/hook", 2)
        assert [r.body["subject"] for r in got] == [first, second]
        await eventually_async(lambda: _no_pending_events(api), timeout=10)
        async with api.services.db.read() as session:
            [garbage] = (
                await session.execute(sa.select(NotificationEventRow).where(NotificationEventRow.key == "garbage"))
            ).scalars()
        assert garbage.expanded_at is None and garbage.set_aside_at is not None
        assert garbage.set_aside_reason is not None and garbage.set_aside_reason.startswith("unexpandable: IndexError")
        assert _count("loopgate_notification_events_set_aside_total") == before + 1

        listed = await api.http.get("/v1/admin/notifications/set-aside-events", headers=api.auth("admin"))
        assert listed.status_code == 200, listed.text
        [item] = listed.json()["items"]
        assert (item["exception_id"], item["event"], item["key"]) == (first, "sla_breached", "garbage")


async def test_the_set_aside_lists_are_admin_only_and_paged(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_interval_seconds=3600)
    async with api_factory(settings) as api:
        ids = [(await api.create())["id"] for _ in range(5)]
        for exception_id in ids:
            await _stored_far_in_the_future(api, exception_id)
        async with api.services.db.write() as session, session.begin():
            # every one of them set aside as the relay would
            await session.execute(
                sa.update(NotificationEventRow).values(set_aside_at=dt.datetime.now(dt.UTC), set_aside_reason="x")
            )
        for role in ("operator", "service"):
            for path in ("set-aside", "set-aside-events"):
                answer = await api.http.get(f"/v1/admin/notifications/{path}", headers=api.auth(role))
                assert answer.status_code == 403, (role, path)
        pages, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await api.http.get(
                "/v1/admin/notifications/set-aside-events", params=params, headers=api.auth("admin")
            )
            assert page.status_code == 200, page.text
            pages.append([i["exception_id"] for i in page.json()["items"]])
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        newest_first = ids[::-1]
        assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
        for hostile in ({"limit": 100000}, {"limit": 0}, {"cursor": "-1"}, {"cursor": "1e9"}, {"cursor": "9" * 19}):
            bad = await api.http.get(
                "/v1/admin/notifications/set-aside-events", params=hostile, headers=api.auth("admin")
            )
            assert bad.status_code == 422, (hostile, bad.text)
        for path in ("notifications/set-aside", "notifications/set-aside-events", "outcomes/set-aside"):
            huge = await api.http.get(f"/v1/admin/{path}", params={"cursor": "9" * 18}, headers=api.auth("admin"))
            assert huge.status_code == 200, (path, huge.text)  # past every id: from the newest
        assert await rows_of(api, ids[0]) == []
