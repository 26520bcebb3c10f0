"""Inhibition, the database side (grouping.inhibited_by decides): an opening that an inhibit rule
holds back while another exception fires (is unresolved) is told nobody and kept here; each fan-out
pass releases those whose inhibitors have all resolved, recording an `opened` event under a key of
their own, which the fan-out tells (under the opened notification's id, as a silence's release)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.db.models import ExceptionRow, NotificationInhibitionRow
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate.resolution_api.notifications import store
from loopgate.resolution_api.notifications.config import NotificationsConfig
from loopgate.resolution_api.notifications.grouping import Firing, inhibited_by
from loopgate.resolution_api.notifications.groups import labels_of

COLUMNS = {
    "rule": ExceptionRow.rule_id,
    "client": ExceptionRow.client_id,
    "source": ExceptionRow.source,
    "severity": ExceptionRow.severity,
    "kind": ExceptionRow.kind,
    "queue": ExceptionRow.queue,
    "subject": ExceptionRow.subject,
}
CANDIDATES = 500  # firing exceptions read per rule (those sharing the rule's equal labels)


async def inhibitor_of(
    *, session: AsyncSession, config: NotificationsConfig, row: ExceptionRow
) -> tuple[int, str] | None:
    """(the rule, the firing exception) holding this exception's notifications back; None: told."""
    labels = labels_of(row)
    for index, rule in enumerate(config.inhibit_rules):
        if not rule.target.matches(labels):
            continue
        stmt = sa.select(ExceptionRow).where(ExceptionRow.status != Status.RESOLVED.value, ExceptionRow.id != row.id)
        for name in rule.equal:
            stmt = stmt.where(COLUMNS[name] == getattr(row, COLUMNS[name].key))
        firing = [Firing(r.id, labels_of(r)) for r in (await session.execute(stmt.limit(CANDIDATES))).scalars()]
        found = inhibited_by([rule], row.id, labels, firing)
        if found is not None:
            return index, found[1]
    return None


async def hold(*, session: AsyncSession, exception_id: str, rule: int, by: str, now: dt.datetime) -> None:
    existing = await session.get(NotificationInhibitionRow, exception_id)
    if existing is None:
        session.add(NotificationInhibitionRow(exception_id=exception_id, inhibited_by=by, rule=rule, held_at=now))
    else:
        existing.inhibited_by, existing.rule, existing.released_at = by, rule, None
    await session.flush()


async def release(*, session: AsyncSession, config: NotificationsConfig, now: dt.datetime, limit: int = 200) -> int:
    """Release the held exceptions nothing inhibits any more (a resolved one is released untold);
    how many were told they opened."""
    held = list(
        (
            await session.execute(
                sa.select(NotificationInhibitionRow, ExceptionRow)
                .join(ExceptionRow, ExceptionRow.id == NotificationInhibitionRow.exception_id)
                .where(NotificationInhibitionRow.released_at.is_(None))
                .order_by(NotificationInhibitionRow.held_at)
                .limit(limit)
            )
        ).all()
    )
    told = 0
    for hold_row, row in held:
        if row.status != Status.RESOLVED.value:
            still = await inhibitor_of(session=session, config=config, row=row)
            if still is not None:
                hold_row.inhibited_by, hold_row.rule = still[1], still[0]
                continue
            key = f"uninhibited:{int(now.timestamp() * 1000)}"
            await store.record_event(session=session, exception_id=row.id, event="opened", key=key, now=now)
            told += 1
        hold_row.released_at = now
    await session.flush()
    return told
