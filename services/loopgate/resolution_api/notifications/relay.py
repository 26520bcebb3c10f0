"""The notification relay: turns committed notification events into one notification per receiver
(the fan-out) and sends each receiver its notifications in order, each receiver on its own.

Why two steps: the change (an exception opened, escalated, breaching its SLA, resolved, an
escalation level reached) commits its event in its own transaction without knowing the receivers;
the fan-out, in one transaction per batch, applies the configuration (the queue's receivers, its
minimum severity, silences, the flapping limit) and writes the notifications with their stable ids
(notification_id_for: exception, event, receiver), so each is written once whatever happens.

Sending is at least once: a crash between a receiver's answer and the mark resends the same id.
A receiver that fails (connection, timeout, 5xx, 429) is retried with doubling waits
(notify_retry_initial_seconds up to notify_retry_max_seconds) and keeps its order (its oldest
notification first); one that refuses a notification for good (400, 413, 422) has it set aside.
Each receiver has its own task and timeout, so a slow or failing one delays nobody else.
With API replicas on PostgreSQL, events and notifications are claimed with FOR UPDATE SKIP LOCKED,
and one replica at a time sends to a given receiver (an advisory lock), which keeps its order.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.resolution_api import store as api_store
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.cursor import SEVERITY_RANK
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.models import ExceptionRow, NotificationEventRow, NotificationRow
from loopgate.resolution_api.notifications import store
from loopgate.resolution_api.notifications.config import NotificationsConfig
from loopgate.resolution_api.notifications.payloads import Told, queue_of, render
from loopgate.resolution_api.silencing import is_silenced
from loopgate_schemas.notifications import notification_id_for

log = logging.getLogger(__name__)
NOTIFY_ACTOR = "system:notify"
PERMANENT_STATUSES = frozenset({400, 413, 422})
Silenced = Callable[[ExceptionRow, dt.datetime], bool]


def silenced_now(row: ExceptionRow, now: dt.datetime) -> bool:
    """Whether a silence holds the exception now (silencing.py keeps `silenced_by` up to date)."""
    return is_silenced(row)


@dataclass(frozen=True, slots=True)
class Planned:
    receivers: list[str]
    suppressed: str | None = None  # why nobody is told (silenced), for the metric


def plan(config: NotificationsConfig, row: ExceptionRow, event: NotificationEventRow, *, silenced: bool) -> Planned:
    """Who hears of this event (pure): the level's receivers, or the queue's (opened: from its
    minimum severity). Resolved alerts are planned by the relay (the receivers that fired)."""
    if silenced:
        return Planned([], suppressed="silenced")
    if event.level is not None:
        return Planned(list(event.receivers or []))
    queue = config.queue(queue_of(row))
    if event.event == "opened" and SEVERITY_RANK[row.severity] < SEVERITY_RANK[queue.min_severity.value]:
        return Planned([])
    return Planned(list(queue.receivers))


class NotificationRelay(BackgroundLoop):
    name = "notification-relay"

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        config: NotificationsConfig,
        urls: dict[str, str],
        clock: Clock = utcnow,
        silenced: Silenced = silenced_now,
        batch_size: int = 100,
    ) -> None:
        self._db = db
        self._config = config
        self._urls = urls
        self._clock = clock
        self._silenced = silenced
        self._settings = settings
        self._batch_size = batch_size
        self._wakeups = {name: asyncio.Event() for name in config.receivers}
        self._fan_out_wakeup = asyncio.Event()

    def wake(self) -> None:
        """Look for events soon (tests; the relay also looks every notify_interval_seconds)."""
        self._fan_out_wakeup.set()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tasks:
            tasks.create_task(self._fan_out_loop(), name="notification-fan-out")
            for name in self._config.receivers:
                tasks.create_task(self._receiver_loop(name, http), name=f"notify-{name}")

    # --- fan-out -----------------------------------------------------------------------------

    async def _fan_out_loop(self) -> None:
        try:
            if set_aside := await self._set_aside_unknown_receivers():
                log.warning("%d notifications to receivers no longer configured set aside", set_aside)
        except Exception:
            log.exception("cannot check for receivers no longer configured")
        while not self.stopping:
            try:
                while await self.fan_out() == self._batch_size:
                    pass
                for wakeup in self._wakeups.values():
                    wakeup.set()
                await self.update_gauges()
            except Exception:  # the relay must outlive any one failure; the next pass retries
                log.exception("notification fan-out failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.notify_interval_seconds):
                    await self._fan_out_wakeup.wait()
            self._fan_out_wakeup.clear()

    async def _set_aside_unknown_receivers(self) -> int:
        async with self._db.read() as session, session.begin():
            unknown = set(await store.pending_receivers(session=session)) - set(self._config.receivers)
        if not unknown:
            return 0
        async with self._db.write() as session, session.begin():
            return await store.set_aside(
                session=session, now=self._clock(), reason="receiver no longer configured", receivers=unknown
            )

    async def fan_out(self) -> int:
        """Turn up to a batch of pending events into notifications; how many events."""
        async with self._db.read() as session, session.begin():
            if not await store.pending_events(session=session, limit=1):
                return 0
        async with self._db.write() as session, session.begin():
            events = await store.pending_events(
                session=session, limit=self._batch_size, claim=self._db.backend == "postgresql"
            )
            if not events:
                return 0
            rows = await api_store.get_exceptions(session=session, ids={e.exception_id for e in events})
            now = self._clock()
            for event in events:
                await self._expand(session, rows[event.exception_id], event, now)
            await store.mark_expanded(session=session, ids=[e.id for e in events], now=now)
        return len(events)

    async def _expand(
        self, session: AsyncSession, row: ExceptionRow, event: NotificationEventRow, now: dt.datetime
    ) -> None:
        if event.event == "resolved":
            receivers = await store.alert_receivers(session=session, exception_id=row.id)
        else:
            planned = plan(self._config, row, event, silenced=self._silenced(row, now))
            receivers = planned.receivers
            if planned.suppressed:
                metrics.NOTIFICATIONS_SUPPRESSED.labels(planned.suppressed).inc()
        sla = event.key.split(":")[1] if event.event == "sla_breached" else None
        for name in dict.fromkeys(receivers):
            receiver = self._config.receivers.get(name)
            if receiver is None or (event.event == "resolved" and receiver.kind != "alertmanager"):
                continue
            # An exception a silence released is told it opened under the opened notification's
            # id: a receiver told before the silence has it already (added once by id).
            key = "opened" if event.event == "opened" else event.key
            told = Told(
                notification_id=notification_id_for(row.id, key, name),
                event=event.event,
                receiver=name,
                at=event.created_at,
                level=event.level,
                sla=sla,
            )
            if key != event.key and await store.exists(session=session, notification_id=told.notification_id):
                continue  # told it opened before the silence
            values = {
                "notification_id": told.notification_id,
                "exception_id": row.id,
                "event": event.event,
                "level": event.level,
                "receiver": name,
                "receiver_kind": receiver.kind,
                "fingerprint": row.fingerprint,
                "payload": render(
                    row,
                    told,
                    kind=receiver.kind,
                    public_url=self._settings.public_url,
                    firing_hold_seconds=receiver.firing_hold_seconds,
                ),
                "created_at": now,
            }
            if event.event == "opened" and await self._flapping(session, row, name, now):
                values.update(set_aside_at=now, set_aside_reason=store.RATE_LIMITED)
                metrics.NOTIFICATIONS_SUPPRESSED.labels(store.RATE_LIMITED).inc()
            await store.add_notifications(session=session, rows=[values])

    async def _flapping(self, session: AsyncSession, row: ExceptionRow, receiver: str, now: dt.datetime) -> bool:
        window = self._settings.notify_flap_window_seconds
        if window <= 0:
            return False
        since = now - dt.timedelta(seconds=window)
        told = await store.recent_opened(session=session, fingerprint=row.fingerprint, receiver=receiver, since=since)
        return told >= self._settings.notify_flap_max

    # --- delivery ----------------------------------------------------------------------------

    async def _receiver_loop(self, name: str, http: aiohttp.ClientSession) -> None:
        failures = 0
        wakeup = self._wakeups[name]
        while not self.stopping:
            if failures:
                # backing off: wake-ups do not shorten the wait
                initial, cap = self._settings.notify_retry_initial_seconds, self._settings.notify_retry_max_seconds
                await asyncio.sleep(min(initial * 2 ** (failures - 1), cap))
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.notify_interval_seconds):
                        await wakeup.wait()
            wakeup.clear()
            try:
                delivered_all = await self.deliver(name, http)
            except Exception:
                log.exception("notifying %s failed", name)
                delivered_all = False
            failures = 0 if delivered_all else min(failures + 1, 20)

    async def deliver(self, name: str, http: aiohttp.ClientSession) -> bool:
        """Send the receiver its pending notifications in order; False at the first that failed."""
        if self._db.backend == "postgresql":
            async with self._db.exclusive(f"loopgate.notify.{name}") as ours:
                if not ours:
                    return True  # another replica sends to this receiver now
                while not self.stopping:
                    async with self._db.write() as session, session.begin():
                        rows = await store.pending_for(
                            session=session, receiver=name, limit=self._batch_size, claim=True
                        )
                        for row in rows:
                            if not await self._settle(session, row, await self._send(http, row)):
                                return False
                    if len(rows) < self._batch_size:
                        return True
            return True
        while not self.stopping:
            async with self._db.read() as session, session.begin():
                rows = await store.pending_for(session=session, receiver=name, limit=self._batch_size)
            for row in rows:
                if not await _finished_even_if_stopped(self._send_and_settle(http, row)):
                    return False
            if len(rows) < self._batch_size:
                return True
        return True

    async def _send_and_settle(self, http: aiohttp.ClientSession, row: NotificationRow) -> bool:
        failure = await self._send(http, row)
        async with self._db.write() as session, session.begin():
            return await self._settle(session, row, failure)

    async def _send(self, http: aiohttp.ClientSession, row: NotificationRow) -> tuple[str, bool] | None:
        """POST one notification; None when the receiver took it, else (reason, permanent)."""
        receiver = self._config.receivers[row.receiver]
        url = self._urls[row.receiver]
        if receiver.kind == "alertmanager" and not url.rstrip("/").endswith("/api/v2/alerts"):
            url = f"{url.rstrip('/')}/api/v2/alerts"
        content_type = "application/cloudevents+json" if receiver.kind == "webhook" else "application/json"
        headers = {"Content-Type": content_type, "X-Loopgate-Notification-Id": row.notification_id}
        try:
            async with asyncio.timeout(receiver.timeout_seconds):
                async with http.post(url, data=row.payload.encode(), headers=headers) as response:
                    await response.read()
                    status = response.status
        except TimeoutError:
            return "timeout", False
        except (aiohttp.ClientError, OSError) as err:
            return f"connection: {type(err).__name__}: {err}", False
        if 200 <= status < 300:
            return None
        return f"http_{status}", status in PERMANENT_STATUSES

    async def _settle(self, session: AsyncSession, row: NotificationRow, failure: tuple[str, bool] | None) -> bool:
        """Mark it sent (and in the exception's history: who was told when), set aside or failed;
        False when the receiver must be retried later."""
        now = self._clock()
        if failure is None:
            await store.mark_sent(session=session, row_id=row.id, now=now)
            await api_store.add_event(
                session=session,
                exception_id=row.exception_id,
                at=now,
                actor=NOTIFY_ACTOR,
                action="notified",
                from_status=None,
                to_status=None,
                fields={
                    "receiver": row.receiver,
                    "kind": row.receiver_kind,
                    "event": row.event,
                    "level": row.level,
                    "notification_id": row.notification_id,
                },
            )
            metrics.NOTIFICATIONS_SENT.labels(row.receiver, row.receiver_kind, row.event).inc()
            return True
        reason, permanent = failure
        kind = row.receiver_kind
        metrics.NOTIFICATIONS_FAILED.labels(row.receiver, kind, "refused" if permanent else reason.split(":")[0]).inc()
        if permanent:
            await store.set_aside(session=session, now=now, reason=f"refused: {reason}", row_id=row.id)
            log.error("receiver %s refused notification %s (%s); set aside", row.receiver, row.notification_id, reason)
            return True
        if row.attempts == 0:
            log.warning("cannot notify %s (%s); retrying with backoff", row.receiver, reason)
        await store.mark_failed(session=session, row_id=row.id, error=reason)
        return False

    async def update_gauges(self) -> None:
        async with self._db.read() as session, session.begin():
            pending, oldest = await store.backlog(session=session)
        metrics.NOTIFICATIONS_PENDING.set(pending)
        age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
        metrics.NOTIFICATION_BACKLOG_AGE.set(max(0.0, age))


async def _finished_even_if_stopped(step: Coroutine[Any, Any, bool]) -> bool:
    """Run a send and the record of it as one step: a stop (the API restarting) that arrived
    between the receiver's answer and the commit would have the notification sent again after the
    restart. A cancellation waits for the step (bounded by the receiver's timeout; the relay's
    stop gives up after its own bound) and is raised once the step is done."""
    task = asyncio.ensure_future(step)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result
