"""Egress is careful (issue 23), against real local receivers: no redirect is followed (a loop
neither), a huge answer is not read further than its head, Retry-After is honoured within bounds,
webhooks are signed (Standard Webhooks, checked with the `standardwebhooks` package, not our
signer), a request that cannot be made sets that notification aside, and a receiver that is
wrong (redirecting, 401/403/404, 5xx, refusing everything) is never taken for bad rows: its
notifications wait, /readyz and loopgate_notification_receiver_up say so, and it resumes by itself."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import itertools
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web
from prometheus_client import REGISTRY
from standardwebhooks import Webhook

from loopgate.common.settings import Settings
from loopgate.resolution_api.db.models import NotificationRow
from loopgate_tools.waiting import eventually_async
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.receivers import Receivers
from tests.integration.test_api_notifications import notify_settings, one_hook, rows_of, settled

SECRET = "whsec_" + base64.b64encode(b"loopgate-test-secret-of-32-bytes").decode()


def _up(receiver: str) -> float | None:
    return REGISTRY.get_sample_value("loopgate_notification_receiver_up", {"receiver": receiver})


async def _degraded(api: Api) -> list[str]:
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200, ready.text  # a receiver failing does not make the API unready
    degraded: list[str] = ready.json()["degraded"]
    return degraded


def _answer(status: int, **headers: str) -> web.Response:
    return web.Response(status=status, text="no", headers=headers)


@pytest.mark.parametrize(
    ("status", "headers", "said"),
    [
        (302, {"Location": "/elsewhere"}, "redirect: http_302 to /elsewhere, not followed"),
        (307, {"Location": "/hook"}, "redirect: http_307 to /hook"),  # a loop: never followed either
        (401, {}, "http_401"),
        (404, {}, "http_404"),
        (500, {}, "http_500"),
    ],
)
async def test_a_receiver_that_is_wrong_or_down_is_never_a_bad_row_and_resumes_by_itself(
    api_factory: ApiFactory,
    api_settings: Settings,
    receivers: Receivers,
    tmp_path: Path,
    status: int,
    headers: dict[str, str],
    said: str,
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers))

    async def wrong(request: web.Request) -> web.Response:
        return _answer(status, **headers)

    receivers.answer["/hook"] = wrong
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        await receivers.wait_for("/hook", 4, attempts=True)
        assert receivers.attempts("/elsewhere") == []
        [row] = await rows_of(api, exception_id)
        assert row.sent_at is None and row.set_aside_at is None
        assert row.last_error is not None and row.last_error.startswith(said), row.last_error
        assert _up("hook") == 0
        [problem] = await _degraded(api)
        assert problem.startswith("notification receiver hook failing for") and said in problem

        del receivers.answer["/hook"]  # the receiver is put right: nobody restarts anything
        [got] = await receivers.wait_for("/hook", 1)
        assert got.body["subject"] == exception_id
        await settled(api, exception_id, 1)
        assert _up("hook") == 1 and await _degraded(api) == []


async def test_a_huge_answer_is_not_read_beyond_its_head(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    toml = one_hook(receivers).replace('kind = "webhook"', 'kind = "webhook"\ntimeout_seconds = 5')
    settings = notify_settings(api_settings, tmp_path, toml, notify_max_response_bytes=1024)
    written: list[int] = []

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        sent = 0
        try:
            while sent < 200 * 1024 * 1024:  # throttled: a client reading it all would time out
                await response.write(b"x" * 65536)
                sent += 65536
                await asyncio.sleep(0.01)
        except (ConnectionError, RuntimeError):
            pass  # the relay closed the connection
        written.append(sent)
        return response

    receivers.answer["/hook"] = endless
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        started = time.monotonic()
        [row] = await settled(api, exception_id, 1, within=10)
        assert row.sent_at is not None and row.attempts == 1
        assert time.monotonic() - started < 4
        # the receiver notices the closed connection at its next write
        await eventually_async(lambda: bool(written), timeout=10, what="the receiver's writes")
        assert written[0] < 32 * 1024 * 1024


async def test_a_refusal_names_what_the_receiver_said_within_bounds(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_max_response_bytes=64)

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=422, text="bad\r\nX-Forged: yes\x00" + "y" * 100_000)

    receivers.answer["/hook"] = refuse
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        [row] = await settled(api, exception_id, 1)
        assert row.set_aside_at is not None and row.sent_at is None
        # the first 64 bytes, on one line
        assert row.set_aside_reason == "http_422: bad  X-Forged: yes " + "y" * (64 - len("bad\r\nX-Forged: yes\x00"))


async def test_retry_after_is_honoured_in_both_forms_bounded_and_garbage_ignored(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_retry_after_max_seconds=1.5)
    answers = iter(
        [
            lambda: _answer(503, **{"Retry-After": "1"}),
            lambda: _answer(429, **{"Retry-After": "99999999999999999999"}),  # capped at 1.5 s
            lambda: _answer(
                503,
                **{"Retry-After": email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3), True)},
            ),  # an HTTP date, at most 1.5 s away once bounded
            lambda: _answer(503, **{"Retry-After": "-5"}),
            lambda: _answer(503, **{"Retry-After": "soon, maybe"}),
            lambda: _answer(503, **{"Retry-After": "Mon, 32 Foo 99999 25:61:61 GMT"}),
        ]
    )

    async def flaky(request: web.Request) -> web.Response:
        following = next(answers, None)
        return following() if following else web.json_response({"ok": True})

    receivers.answer["/hook"] = flaky
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        await settled(api, exception_id, 1, within=20)
        tries = [r.at for r in receivers.attempts("/hook")]
        waits = [round(b - a, 2) for a, b in itertools.pairwise(tries)]
        assert len(waits) == 6, waits
        assert 0.95 <= waits[0] < 1.5, waits
        assert 1.45 <= waits[1] < 2.2, waits
        assert 1.45 <= waits[2] < 2.2, waits
        assert [w < 0.9 for w in waits[3:]] == [True] * 3, waits  # the usual backoff (0.4 s at most)


async def test_webhooks_are_signed_following_standard_webhooks(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    secret = tmp_path / "hook-secret"
    secret.write_text(SECRET + "\n")
    toml = (
        one_hook(receivers).replace('kind = "webhook"', f'kind = "webhook"\nsecret_file = "{secret}"')
        + f'[receivers.chat]\nkind = "slack"\nurl = "{receivers.url("/chat")}"\n'
    ).replace('receivers = ["hook"]', 'receivers = ["hook", "chat"]')
    settings = notify_settings(api_settings, tmp_path, toml)
    receivers.fail_first["/hook"] = 1
    async with api_factory(settings) as api:
        exception_id = (await api.create())["id"]
        [got] = await receivers.wait_for("/hook", 1)
        [failed, _] = receivers.attempts("/hook")
        verified = Webhook(SECRET).verify(got.raw, got.headers)  # raises unless the signature holds
        assert verified["subject"] == exception_id
        assert got.headers["webhook-id"] == got.body["id"] == failed.headers["webhook-id"]  # a retry keeps its id
        assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
        assert got.headers["webhook-signature"].startswith("v1,")
        with pytest.raises(Exception, match="signature"):
            Webhook(SECRET).verify(got.raw.replace(b"critical", b"info").replace(b"high", b"low"), got.headers)
        with pytest.raises(Exception, match="signature"):
            Webhook("whsec_" + base64.b64encode(b"another-secret-of-the-same-size!").decode()).verify(
                got.raw, got.headers
            )
        [chat] = await receivers.wait_for("/chat", 1)
        assert "webhook-signature" not in {k.lower() for k in chat.headers}  # no secret: unsigned


async def test_a_notification_whose_request_cannot_be_made_is_set_aside_and_the_next_goes(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_interval_seconds=3600)
    before = REGISTRY.get_sample_value(
        "loopgate_notifications_set_aside_total", {"receiver": "hook", "reason": "unsendable"}
    )
    async with api_factory(settings) as api:
        first = (await api.create())["id"]
        async with api.services.db.write() as session, session.begin():
            await session.execute(
                sa.insert(NotificationRow).values(
                    notification_id="forged\r\nX-Admin: yes",
                    exception_id=first,
                    event="opened",
                    receiver="hook",
                    receiver_kind="webhook",
                    fingerprint="f",
                    payload="{}",
                    created_at=dt.datetime.now(dt.UTC),
                    attempts=0,
                )
            )
        second = (await api.create())["id"]
        api.services.notifier.wake()
        got = await receivers.wait_for("/hook", 2)
        assert [r.body["subject"] for r in got] == [first, second]

        async def forged_set_aside() -> NotificationRow:
            async with api.services.db.read() as session:
                [forged] = (
                    await session.execute(
                        sa.select(NotificationRow).where(NotificationRow.notification_id.like("forged%"))
                    )
                ).scalars()
            assert forged.set_aside_reason is not None, f"forged row not set aside: sent_at={forged.sent_at}"
            return forged

        forged = await eventually_async(forged_set_aside, timeout=20)  # set aside after the next is sent
        assert forged.sent_at is None and forged.set_aside_reason is not None
        assert forged.set_aside_reason.startswith("unsendable: ValueError")
        assert "\r" not in forged.set_aside_reason and "\n" not in forged.set_aside_reason
        after = REGISTRY.get_sample_value(
            "loopgate_notifications_set_aside_total", {"receiver": "hook", "reason": "unsendable"}
        )
        assert (after or 0) == (before or 0) + 1
        assert all("X-Admin" not in str(r.headers) for r in receivers.requests)


async def test_a_receiver_refusing_everything_is_misconfigured_not_a_run_of_bad_rows(
    api_factory: ApiFactory, api_settings: Settings, receivers: Receivers, tmp_path: Path
) -> None:
    settings = notify_settings(api_settings, tmp_path, one_hook(receivers), notify_refusals_before_outage=3)

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, text="invalid_payload")

    receivers.answer["/hook"] = refuse
    async with api_factory(settings) as api:
        ids = [(await api.create())["id"] for _ in range(4)]
        await receivers.wait_for("/hook", 5, attempts=True)
        rows = [(await rows_of(api, i))[0] for i in ids]
        assert [r.set_aside_reason for r in rows[:2]] == ["http_400: invalid_payload"] * 2
        assert rows[2].set_aside_at is None and rows[2].sent_at is None
        assert rows[2].last_error is not None and rows[2].last_error.startswith("refusing every notification")
        assert rows[3].attempts == 0  # waits behind it, in order
        assert _up("hook") == 0
        assert any("refusing every notification" in p for p in await _degraded(api))

        del receivers.answer["/hook"]  # its configuration is put right
        got = await receivers.wait_for("/hook", 2)
        assert [r.body["subject"] for r in got] == ids[2:]
        assert _up("hook") == 1
