"""The sweeper: every `sweep_interval_seconds`, wakes snoozes whose time has come, escalates
exceptions past their SLA and refreshes the gauges /metrics shows (operations.py does the work;
this only schedules it)."""

from __future__ import annotations

import asyncio
import logging

from loopgate.common.settings import Settings
from loopgate.resolution_api import operations
from loopgate.resolution_api.background import BackgroundLoop
from loopgate.resolution_api.db import Database

log = logging.getLogger(__name__)


class Sweeper(BackgroundLoop):
    name = "sweeper"

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def start(self) -> None:
        try:  # the first scrape shows real numbers, not zeros until the first pass
            await operations.refresh_gauges(db=self._db)
        except Exception:
            log.exception("cannot read the gauges' numbers yet; the next pass retries")
        await super().start()

    async def sweep(self) -> tuple[int, int]:
        """One pass: (snoozes woken, exceptions escalated for an SLA breach); then the gauges."""
        woken = await operations.wake_due_snoozes(db=self._db)
        escalated = await operations.escalate_sla_breaches(db=self._db, slas=self._settings.slas)
        await operations.refresh_gauges(db=self._db)
        return woken, escalated

    async def _run(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self._settings.sweep_interval_seconds)
            try:
                woken, escalated = await self.sweep()
                if woken or escalated:
                    log.info("sweep: %d snoozes woken, %d exceptions escalated past their SLA", woken, escalated)
            except Exception:  # a failed pass is retried on the next one
                log.exception("sweep failed")
