"""The notification relay: turns committed notification events into one notification per receiver
(the fan-out) and sends each receiver its notifications in order, each receiver on its own.

Why two steps: the change (an exception opened, escalated, breaching its SLA, resolved, an
escalation level reached) commits its event in its own transaction without knowing the receivers;
the fan-out, in one transaction per batch, applies the configuration (the queue's receivers, its
minimum severity, silences, the flapping limit) and writes the notifications with their stable ids
(notification_id_for: exception, event, receiver), so each is written once whatever happens.

Sending is at least once: a crash between a receiver's answer and the mark resends the same id.
Each receiver has its own task and timeout, so a slow or failing one delays nobody else.
With API replicas on PostgreSQL, events and notifications are claimed with FOR UPDATE SKIP LOCKED,
and one replica at a time sends to a given receiver (an advisory lock), which keeps its order.

One bad row affects that row alone (issue 23). An event that cannot be expanded (a malformed row)
is set aside with its reason in a savepoint of its own, and the events behind it are expanded; a
notification that cannot be rendered for one receiver (its payload cannot be built from the row)
is written set aside for that receiver, and the other receivers are told. A notification that
cannot be sent as it is (the request cannot be made, or the receiver refuses it for good: 400,
413, 422) is set aside, and the receiver's next one goes. Each is counted
(loopgate_notifications_set_aside_total, loopgate_notification_events_set_aside_total), logged and
listed for an admin (/v1/admin/notifications/...).

A receiver that is down or wrong is never a bad row: a connection error, a timeout, a bad
certificate, a 5xx or 429, a redirect (not followed), a 401/403/404 (its URL or token), or a run of
refusals with nothing accepted between (notify_refusals_before_outage: its kind or URL) keep the
notification pending, in order, retried with doubling waits (notify_retry_initial_seconds up to
notify_retry_max_seconds, longer when the receiver's Retry-After asks, up to
notify_retry_after_max_seconds). That is logged when it starts and when it ends, shown by
loopgate_notification_receiver_up and in /readyz, and the relay resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.common.settings import Settings
from loopgate.common.text import one_line
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, NotificationEventRow, NotificationRow
from loopgate.resolution_api.exceptions import store as api_store
from loopgate.resolution_api.notifications import egress, groups, inhibition, store
from loopgate.resolution_api.notifications.channels import email as email_channel
from loopgate.resolution_api.notifications.channels import opsgenie, pagerduty
from loopgate.resolution_api.notifications.config import Endpoint, NotificationsConfig
from loopgate.resolution_api.notifications.payloads import Told, queue_of, render
from loopgate.resolution_api.notifications.signing import signature_headers
from loopgate.resolution_api.schedules.targets import addresses_for
from loopgate.resolution_api.silences.silencing import is_silenced
from loopgate_schemas.exceptions import Severity
from loopgate_schemas.notifications import notification_id_for

log = logging.getLogger(__name__)
NOTIFY_ACTOR = "system:notify"
PERMANENT_STATUSES = frozenset({400, 413, 422})
Silenced = Callable[[ExceptionRow, dt.datetime], bool]
# Failures of the database itself (connection, lock, timeout), not of a row: the pass is retried.
OUTAGES: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    TimeoutError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class SendFailure:
    """Why a notification was not taken: `permanent` when the row itself can never be sent;
    `metric` is the bounded label (timeout, connection, http_<status>, redirect, refused, unsendable)."""

    reason: str
    metric: str
    permanent: bool = False
    retry_after: float | None = None


def why(err: BaseException) -> str:
    """An error as one line for a reason column or a log (data in it cannot forge lines)."""
    return one_line(f"{type(err).__name__}: {err}", 500)


def silenced_now(row: ExceptionRow, now: dt.datetime) -> bool:
    """Whether a silence holds the exception now (silencing.py keeps `silenced_by` up to date)."""
    return is_silenced(row)


@dataclass(frozen=True, slots=True)
class Planned:
    receivers: list[str]
    suppressed: str | None = None  # why nobody is told (silenced), for the metric


def plan(config: NotificationsConfig, row: ExceptionRow, event: NotificationEventRow, *, silenced: bool) -> Planned:
    """Who hears of this event (pure): the level's receivers, or the queue's (opened: from its
    minimum severity), less a client's own receivers for another client's exception. Resolved
    alerts are planned by the relay (the receivers that fired)."""
    if silenced:
        return Planned([], suppressed="silenced")
    if event.level is not None:
        named = list(event.receivers or [])
    else:
        queue = config.queue(queue_of(row))
        if event.event == "opened" and Severity(row.severity).rank < queue.min_severity.rank:
            return Planned([])
        named = list(queue.receivers)
    return Planned([r for r in named if config.may_tell(r, row.client_id)])


class NotificationRelay(BackgroundLoop):
    name = "notification-relay"

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        config: NotificationsConfig,
        endpoints: dict[str, Endpoint],
        clock: Clock = utcnow,
        silenced: Silenced = silenced_now,
        batch_size: int = 100,
    ) -> None:
        self._db = db
        self._config = config
        self._endpoints = endpoints
        self._clock = clock
        self._silenced = silenced
        self._settings = settings
        self._batch_size = batch_size
        self._wakeups = {name: asyncio.Event() for name in config.receivers}
        self._fan_out_wakeup = asyncio.Event()
        # per receiver, in memory: its refusals in a row, the wait its Retry-After asked for, and
        # since when (and why) it fails
        self._refusals = dict.fromkeys(config.receivers, 0)
        self._retry_after: dict[str, float] = {}
        self._failing: dict[str, tuple[float, str]] = {}
        for name in config.receivers:
            metrics.NOTIFICATION_RECEIVER_UP.labels(name).set(1)
            if config.receivers[name].kind == "webhook" and endpoints[name].secret is None:
                log.warning("webhook receiver %s is not signed: give it a secret_file or secret_env", name)

    def wake(self) -> None:
        """Look for events soon (tests; the relay also looks every notify_interval_seconds)."""
        self._fan_out_wakeup.set()

    def problems(self) -> list[str]:
        """Receivers failing now, for /readyz: one line each, since when and why."""
        now = time.monotonic()
        return [
            f"notification receiver {name} failing for {now - since:.0f} s: {reason}"
            for name, (since, reason) in sorted(self._failing.items())
        ]

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
                await self.flush_groups()
                for wakeup in self._wakeups.values():
                    wakeup.set()
                await self.update_gauges()
            except Exception:  # the relay must outlive any one failure; the next pass retries
                log.exception("notification fan-out failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.notify_interval_seconds):
                    await self._fan_out_wakeup.wait()
            self._fan_out_wakeup.clear()

    async def flush_groups(self) -> int:
        """Release the openings nothing inhibits any more (inhibition.py), then write the grouped
        messages that are due (groups.py); how many messages. Without inhibit rules or grouped
        queues, no pass over the database."""
        if self._config.inhibit_rules:
            async with self._db.write() as session, session.begin():
                if await inhibition.release(session=session, config=self._config, now=self._clock()):
                    self._fan_out_wakeup.set()  # the released openings are expanded on the next pass
        if not any(queue.group_by for queue in self._config.queues.values()):
            return 0
        async with self._db.write() as session, session.begin():
            return await groups.flush_groups(
                session=session, config=self._config, public_url=self._settings.public_url, now=self._clock()
            )

    async def _set_aside_unknown_receivers(self) -> int:
        async with self._db.read() as session, session.begin():
            unknown = set(await store.pending_receivers(session=session)) - set(self._config.receivers)
        if not unknown:
            return 0
        count = 0
        for name in sorted(unknown):
            async with self._db.write() as session, session.begin():
                gone = await store.set_aside(
                    session=session, now=self._clock(), reason="receiver_gone: no longer configured", receivers=[name]
                )
            metrics.NOTIFICATIONS_SET_ASIDE.labels(name, "receiver_gone").inc(gone)
            count += gone
        return count

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
            expanded = []
            for event in events:
                try:
                    async with session.begin_nested():  # one event's failure undoes that event alone
                        await self._expand(session, rows[event.exception_id], event, now)
                except OUTAGES:
                    raise  # the database, not the event: the whole pass is retried
                except Exception as err:
                    reason = f"unexpandable: {why(err)}"
                    await store.set_aside_event(session=session, event_id=event.id, reason=reason, now=now)
                    metrics.NOTIFICATION_EVENTS_SET_ASIDE.inc()
                    log.error(
                        "notification event %d (%s) of exception %s set aside, the others go on: %s",
                        event.id,
                        one_line(event.event, 64),
                        one_line(event.exception_id, 128),
                        reason,
                    )
                else:
                    expanded.append(event.id)
            await store.mark_expanded(session=session, ids=expanded, now=now)
        return len(events)

    async def _expand(
        self, session: AsyncSession, row: ExceptionRow, event: NotificationEventRow, now: dt.datetime
    ) -> None:
        if event.event == "resolved":
            receivers = await store.alert_receivers(session=session, exception_id=row.id)
        elif event.event == "opened" and (
            held := await inhibition.inhibitor_of(session=session, config=self._config, row=row)
        ):
            await inhibition.hold(session=session, exception_id=row.id, rule=held[0], by=held[1], now=now)
            metrics.NOTIFICATIONS_SUPPRESSED.labels("inhibited").inc()
            return  # told when nothing inhibits it any more (inhibition.release)
        else:
            planned = plan(self._config, row, event, silenced=self._silenced(row, now))
            receivers = planned.receivers
            if planned.suppressed:
                metrics.NOTIFICATIONS_SUPPRESSED.labels(planned.suppressed).inc()
        sla = event.key.split(":")[1] if event.event == "sla_breached" else None
        for name in dict.fromkeys(receivers):
            receiver = self._config.receivers.get(name)
            if receiver is None or (event.event == "resolved" and receiver.kind not in store.RESOLVING_KINDS):
                continue
            if event.event == "opened" and await groups.join(
                session=session, config=self._config, row=row, receiver=name, now=now
            ):
                continue  # its group's next message lists it (groups.py)
            # PagerDuty takes one routing key per event: one notification per paged person, each
            # under an id of its own, resolved with the key that triggered it (pagerduty.py)
            per_person = receiver.kind == "pagerduty"
            targets: list[tuple[str, ...]]
            if per_person and event.event == "resolved":
                targets = await store.pagerduty_keys(session=session, exception_id=row.id, receiver=name)
            else:
                people = addresses_for(event.people, name)
                targets = [(a,) for a in people] if per_person and people else [people]
            for to in targets:
                split = receiver.kind == "pagerduty" and bool(to)
                # An exception a silence released is told it opened under the opened notification's
                # id: a receiver told before the silence has it already (added once by id).
                key = "opened" if event.event == "opened" else event.key
                told = Told(
                    notification_id=notification_id_for(row.id, key if not split else f"{key}:to:{to[0]}", name),
                    event=event.event,
                    receiver=name,
                    at=event.created_at,
                    level=event.level,
                    sla=sla,
                    to=to,
                )
                if key != event.key and await store.exists(session=session, notification_id=told.notification_id):
                    continue  # told it opened before the silence
                values: dict[str, Any] = {
                    "notification_id": told.notification_id,
                    "exception_id": row.id,
                    "event": event.event,
                    "level": event.level,
                    "receiver": name,
                    "receiver_kind": receiver.kind,
                    "fingerprint": row.fingerprint,
                    "created_at": now,
                }
                try:
                    values["payload"] = render(
                        row,
                        told,
                        kind=receiver.kind,
                        public_url=self._settings.public_url,
                        firing_hold_seconds=receiver.firing_hold_seconds,
                        templates=self._endpoints[name].templates,
                    )
                except Exception as err:  # this row, for this receiver: set aside, the others are told
                    reason = f"unrenderable: {why(err)}"
                    values.update(payload="", set_aside_at=now, set_aside_reason=reason)
                    metrics.NOTIFICATIONS_SET_ASIDE.labels(name, "unrenderable").inc()
                    log.error(
                        "notification %s of exception %s for %s cannot be rendered; set aside: %s",
                        told.notification_id,
                        one_line(row.id, 128),
                        name,
                        reason,
                    )
                else:
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
                # backing off: wake-ups do not shorten the wait; the receiver's Retry-After may lengthen it
                initial, cap = self._settings.notify_retry_initial_seconds, self._settings.notify_retry_max_seconds
                await asyncio.sleep(max(min(initial * 2 ** (failures - 1), cap), self._retry_after.pop(name, 0.0)))
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.notify_interval_seconds):
                        await wakeup.wait()
            wakeup.clear()
            try:
                delivered_all = await self.deliver(name, http)
            except Exception as err:
                log.exception("notifying %s failed", name)
                self._receiver_failing(name, f"relay: {why(err)}")
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

    def _request(self, row: NotificationRow) -> tuple[str, bytes, dict[str, str]]:
        """The URL, body and headers of one attempt (signed now, when the receiver has a secret)."""
        receiver = self._config.receivers[row.receiver]
        endpoint = self._endpoints[row.receiver]
        url = endpoint.url
        if receiver.kind == "alertmanager" and not url.rstrip("/").endswith("/api/v2/alerts"):
            url = f"{url.rstrip('/')}/api/v2/alerts"
        body = row.payload.encode()
        extra: dict[str, str] = {}
        if receiver.kind == "pagerduty":
            url, body = pagerduty.request(url, row.payload, endpoint.key)
        elif receiver.kind == "opsgenie":
            url, body, extra = opsgenie.request(url, row.payload, endpoint.key)
        content_type = "application/cloudevents+json" if receiver.kind == "webhook" else "application/json"
        headers = {"Content-Type": content_type, "X-Loopgate-Notification-Id": row.notification_id} | extra
        if endpoint.secret is not None:
            # the signature's time is the attempt's, on the wall clock the receiver compares it with
            headers |= signature_headers(
                key=endpoint.secret, message_id=row.notification_id, timestamp=int(time.time()), body=body
            )
        return url, body, headers

    async def _send(self, http: aiohttp.ClientSession, row: NotificationRow) -> SendFailure | None:
        """POST one notification; None when the receiver took it, else why not."""
        receiver = self._config.receivers[row.receiver]
        if receiver.kind == "email":
            return await self._send_email(row)
        try:
            url, body, headers = self._request(row)
            # headers the client would refuse (CR/LF, ...) are the row's: refused before any connection
            for key, value in headers.items():
                if one_line(value, len(value)) != value or not value.isascii():
                    raise ValueError(f"header {key} has characters an HTTP header cannot carry")
        except Exception as err:
            return SendFailure(f"unsendable: {why(err)}", "unsendable", permanent=True)
        try:
            async with asyncio.timeout(receiver.timeout_seconds):
                answer = await egress.post(
                    http, url, body=body, headers=headers, max_bytes=self._settings.notify_max_response_bytes
                )
        except TimeoutError:
            return SendFailure(f"timeout: no answer within {receiver.timeout_seconds:g} s", "timeout")
        except aiohttp.ClientConnectorCertificateError as err:
            return SendFailure(f"certificate: {why(err)}", "certificate")
        except (aiohttp.ClientError, OSError, ValueError) as err:
            return SendFailure(f"connection: {why(err)}", "connection")
        status = answer.status
        if 200 <= status < 300:
            return None
        said = egress.answer_text(answer.head)
        reason = f"http_{status}" + (f": {said}" if said else "")
        if 300 <= status < 400:
            where = one_line(answer.location or "nowhere", 300)
            return SendFailure(f"redirect: http_{status} to {where}, not followed (fix the URL)", "redirect")
        if status in PERMANENT_STATUSES:
            return SendFailure(reason, "refused", permanent=True)
        retry_after = egress.retry_after_seconds(
            answer.retry_after, now=dt.datetime.now(dt.UTC), cap=self._settings.notify_retry_after_max_seconds
        )
        return SendFailure(reason, f"http_{status}" if 100 <= status <= 599 else "http_other", retry_after=retry_after)

    async def _send_email(self, row: NotificationRow) -> SendFailure | None:
        receiver = self._config.receivers[row.receiver]
        assert receiver.smtp is not None
        try:
            mail = email_channel.message(receiver.smtp, row.payload, row.notification_id)
        except Exception as err:
            return SendFailure(f"unsendable: {why(err)}", "unsendable", permanent=True)
        try:
            async with asyncio.timeout(receiver.timeout_seconds):
                failed = await email_channel.send(
                    receiver.smtp, self._endpoints[row.receiver].key, mail, seconds=receiver.timeout_seconds
                )
        except TimeoutError:
            return SendFailure(f"timeout: no answer within {receiver.timeout_seconds:g} s", "timeout")
        # the server or the settings, never the message: retried, the receiver shown failing
        return None if failed is None else SendFailure(*failed)

    async def _settle(self, session: AsyncSession, row: NotificationRow, failure: SendFailure | None) -> bool:
        """Mark it sent (and in the exception's history: who was told when), set aside or failed;
        False when the receiver must be retried later."""
        now = self._clock()
        name = row.receiver
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
                    "receiver": name,
                    "kind": row.receiver_kind,
                    "event": row.event,
                    "level": row.level,
                    "notification_id": row.notification_id,
                },
            )
            metrics.NOTIFICATIONS_SENT.labels(name, row.receiver_kind, row.event).inc()
            self._refusals[name] = 0
            self._receiver_up(name)
            return True
        kind = row.receiver_kind
        metrics.NOTIFICATIONS_FAILED.labels(name, kind, failure.metric).inc()
        permanent = failure.permanent
        if failure.metric == "refused":
            self._refusals[name] = self._refusals.get(name, 0) + 1
            if self._refusals[name] >= self._settings.notify_refusals_before_outage:
                permanent = False  # refusing everything: the receiver is wrong, not the notifications
                failure = SendFailure(
                    f"refusing every notification ({self._refusals[name]} in a row, last {failure.reason}): "
                    "check the receiver's kind, URL and token",
                    "refused",
                )
        if permanent:
            await store.set_aside(session=session, now=now, reason=failure.reason, row_id=row.id)
            metrics.NOTIFICATIONS_SET_ASIDE.labels(name, failure.metric).inc()
            log.error(
                "notification %s to %s cannot be sent as it is (%s); set aside, the next go on",
                row.notification_id,
                name,
                failure.reason,
            )
            return True
        if failure.retry_after is not None:
            self._retry_after[name] = failure.retry_after
        self._receiver_failing(name, failure.reason)
        await store.mark_failed(session=session, row_id=row.id, error=failure.reason)
        return False

    def _receiver_failing(self, name: str, reason: str) -> None:
        if name not in self._failing:
            log.warning("cannot notify %s (%s); retrying with backoff until it answers", name, reason)
        since = self._failing.get(name, (time.monotonic(), ""))[0]
        self._failing[name] = (since, reason)
        metrics.NOTIFICATION_RECEIVER_UP.labels(name).set(0)

    def _receiver_up(self, name: str) -> None:
        if (failing := self._failing.pop(name, None)) is not None:
            log.warning("notifying %s again after %.0f s of failures", name, time.monotonic() - failing[0])
        metrics.NOTIFICATION_RECEIVER_UP.labels(name).set(1)

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
