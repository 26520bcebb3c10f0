"""A silence that ends (or is expired) on an exception still unresolved sends the "opened"
notification it held back, once, under the opened notification's id; an exception told before
the silence is not told again, a resolved one never. FakeClock; the sweeper's pass by hand."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

from loopgate.common.settings import Settings
from loopgate_schemas.notifications import notification_id_for
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.clock import FakeClock
from tests.fixtures.receivers import Receivers
from tests.integration.test_api_notifications import notify_settings, one_hook

HOUR = 3600


async def silence(api: Api, clock: FakeClock, **matchers: Any) -> dict[str, Any]:
    ends_at = (clock() + dt.timedelta(seconds=HOUR)).isoformat()
    body = {**matchers, "ends_at": ends_at, "comment": "maintenance"}
    response = await api.http.post("/v1/silences", json=body, headers=api.auth("operator"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def told(receivers: Receivers) -> list[tuple[str, str]]:
    """(exception, notification id) of each "opened" the receiver took (SLA breaches aside)."""
    opened = [r.body for r in receivers.accepted("/hook") if r.body["type"] == "loopgate.exception.opened"]
    return [(body["subject"], body["id"]) for body in opened]


async def test_a_silence_that_ends_sends_the_opened_notification_it_held_back(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers))
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with api_factory(settings, clock) as api:
        before = (await api.create(client_id="acme"))["id"]
        await receivers.wait_for("/hook", 1)
        await silence(api, clock, client_id="acme")
        held = (await api.create(client_id="acme"))["id"]
        done = (await api.create(client_id="acme"))["id"]
        resolved = await api.act(done, "resolve", {"decision": "dismissed", "reason": "maintenance"})
        assert resolved.status_code == 200, resolved.text
        await asyncio.sleep(0.5)  # the relay passes several times: nobody told while silenced
        assert told(receivers) == [(before, notification_id_for(before, "opened", "hook"))]

        clock.advance(HOUR - 1)
        await api.services.sweeper.sweep()
        await asyncio.sleep(0.3)
        assert len(told(receivers)) == 1
        clock.advance(1)
        await api.services.sweeper.sweep()  # the silence ends: `held` is back, and told
        await receivers.wait_for("/hook", 2)
        await asyncio.sleep(0.5)
        assert told(receivers)[1:] == [(held, notification_id_for(held, "opened", "hook"))]

        # Expired early: the same, at once; a second pass of the sweeper tells nobody again.
        s = await silence(api, clock, client_id="globex")
        quiet = (await api.create(client_id="globex"))["id"]
        expired = await api.http.post(f"/v1/silences/{s['id']}/expire", headers=api.auth("operator"))
        assert expired.status_code == 200, expired.text
        await receivers.wait_for("/hook", 3)
        clock.advance(2 * HOUR)
        await api.services.sweeper.sweep()
        await asyncio.sleep(0.5)
        assert told(receivers)[2:] == [(quiet, notification_id_for(quiet, "opened", "hook"))]


async def test_an_exception_told_before_its_silence_is_not_told_again_when_it_ends(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers))
    clock = FakeClock(dt.datetime.now(dt.UTC))
    async with api_factory(settings, clock) as api:
        exception_id = (await api.create(client_id="acme"))["id"]
        await receivers.wait_for("/hook", 1)
        await silence(api, clock, client_id="acme")  # holds it (created already active)
        clock.advance(HOUR)
        await api.services.sweeper.sweep()
        history = await api.http.get(f"/v1/exceptions/{exception_id}", headers=api.auth("operator"))
        assert history.json()["silenced_by"] is None
        await asyncio.sleep(0.5)
        assert told(receivers) == [(exception_id, notification_id_for(exception_id, "opened", "hook"))]
