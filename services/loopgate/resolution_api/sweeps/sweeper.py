"""The sweeper: every `sweep_interval_seconds`, wakes snoozes whose time has come, escalates
exceptions past their SLA, reaches escalation levels (notifications/escalation.py) and refreshes
the gauges /metrics shows (deadlines.py and exceptions/gauges.py do the work; this only schedules it)."""

from __future__ import annotations

import asyncio
import logging

from loopgate.common.settings import Settings
from loopgate.resolution_api.approvals.deadlines import escalate_near_deadlines
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions.gauges import refresh_gauges
from loopgate.resolution_api.messagebus import MessageBus, default_bus
from loopgate.resolution_api.notifications.config import NotificationsConfig
from loopgate.resolution_api.notifications.escalation import escalate_levels
from loopgate.resolution_api.schedules.config import SchedulesConfig
from loopgate.resolution_api.silences import silencing
from loopgate.resolution_api.sweeps.deadlines import escalate_sla_breaches, wake_due_snoozes

log = logging.getLogger(__name__)
SWEEP_LOCK = "loopgate.sweeper"


class Sweeper(BackgroundLoop):
    name = "sweeper"

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        clock: Clock = utcnow,
        notifications: NotificationsConfig | None = None,
        bus: MessageBus | None = None,
        schedules: SchedulesConfig | None = None,
    ) -> None:
        self._db = db
        self._bus = bus or default_bus()
        self._notifications = notifications or NotificationsConfig()
        self._schedules = schedules or SchedulesConfig()
        self._settings = settings
        self._clock = clock
        self._passed = asyncio.Event()  # set (then replaced) at the end of each pass of the loop

    async def start(self) -> None:
        try:  # the first scrape shows real numbers, not zeros until the first pass
            await refresh_gauges(db=self._db)
        except Exception:
            log.exception("cannot read the gauges' numbers yet; the next pass retries")
        await super().start()

    async def sweep(self) -> tuple[int, int]:
        """One pass: (snoozes woken, exceptions escalated for an SLA breach); then the gauges. With
        several API replicas on PostgreSQL, one sweeps at a time (an advisory lock; the others skip
        the pass): each SLA action is taken once, not raced for."""
        woken = escalated = 0
        async with self._db.exclusive(SWEEP_LOCK) as ours:
            if ours:
                woken = await wake_due_snoozes(db=self._db, clock=self._clock, bus=self._bus)
                escalated = await escalate_sla_breaches(
                    db=self._db, slas=self._settings.slas, clock=self._clock, bus=self._bus
                )
                escalated += await escalate_near_deadlines(  # approval items about to miss their release deadline
                    db=self._db,
                    before=self._settings.approval_escalate_before_seconds,
                    clock=self._clock,
                    bus=self._bus,
                )
                await silencing.apply_due(db=self._db, clock=self._clock)  # silences that started or ended
                levels = await escalate_levels(
                    db=self._db, config=self._notifications, schedules=self._schedules, clock=self._clock
                )
                if levels:
                    log.info("sweep: %d escalation levels reached", levels)
        await refresh_gauges(db=self._db)
        return woken, escalated

    async def next_pass(self) -> None:
        """Until the loop completes its next successful pass (tests wait for this, not for time)."""
        await self._passed.wait()

    async def _run(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self._settings.sweep_interval_seconds)
            try:
                woken, escalated = await self.sweep()
                self._passed.set()
                self._passed = asyncio.Event()
                if woken or escalated:
                    log.info("sweep: %d snoozes woken, %d exceptions escalated past their SLA", woken, escalated)
            except Exception:  # a failed pass (e.g. the database away) is retried on the next one
                log.exception("sweep failed")
