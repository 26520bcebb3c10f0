"""Work by filter (`POST /v1/exceptions/bulk`): resolve, snooze or claim every exception the list
filters match, in one request, or only count them first (a dry run).

The matches are worked in id order, a chunk per transaction (`BULK_CHUNK` rows: their rows locked,
changed in memory, written with a few statements: the updates, their history rows and, for a
resolution, their outcomes in the outbox), so 10,000 exceptions take a few seconds and the intake
and the operators' own requests get their turns between chunks. Each exception changes as its
single transition would change it (lifecycle.py's rules, a version bump, one history event, one
outcome per resolution); one whose status no longer allows the action when its chunk reaches it
(a concurrent change) is left alone and counted as skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from loopgate.common import metrics
from loopgate.resolution_api import store, verdicts
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.lifecycle import TRANSITIONS, Action, Status
from loopgate.resolution_api.models import ExceptionRow
from loopgate.resolution_api.notifications import store as notifications
from loopgate.resolution_api.store import ExceptionFilters
from loopgate.resolution_api.transitions import Change, ChangeFor, iso, outcome_of

BULK_CHUNK = 500


@dataclass(frozen=True, slots=True)
class BulkWork:
    """What a bulk request did (or, in a dry run, would do)."""

    matched: int  # exceptions matching the filter whose status allows the action
    changed: int = 0
    skipped: int = 0  # matched, but changed meanwhile so that the action no longer applied


def snooze_change(until: dt.datetime, reason: str) -> ChangeFor:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change:
        return Change(
            values={"snoozed_until": until},
            fields={"until": until.isoformat(), "reason": reason, "previous_until": iso(row.snoozed_until)},
        )

    return change_for


def claim_change(assignee: str) -> ChangeFor:
    def change_for(row: ExceptionRow, now: dt.datetime) -> Change | None:
        if row.status == Status.CLAIMED and row.assignee == assignee:
            return None  # already held: nothing changes
        return Change(
            values={"assignee": assignee, "snoozed_until": None},
            fields={"assignee": {"before": row.assignee, "after": assignee}},
        )

    return change_for


async def count(*, db: Database, filters: ExceptionFilters, action: Action) -> int:
    """How many exceptions match the filter and may take the action now (the dry run)."""
    allowed_from, _ = TRANSITIONS[action]
    async with db.read() as session, session.begin():
        return await store.count_matching(session=session, filters=filters, statuses=[s.value for s in allowed_from])


async def work(
    *,
    db: Database,
    filters: ExceptionFilters,
    action: Action,
    actor: str,
    change_for: ChangeFor,
    clock: Clock = utcnow,
    chunk: int = BULK_CHUNK,
) -> BulkWork:
    """Apply the action to every matching exception, a chunk per transaction."""
    allowed_from, target = TRANSITIONS[action]
    statuses = [s.value for s in allowed_from]
    matched = changed = skipped = 0
    after_id: str | None = None
    while True:
        async with db.write() as session, session.begin():
            rows = await store.lock_matching(
                session=session, filters=filters, statuses=statuses, after_id=after_id, limit=chunk
            )
            if not rows:
                break
            now = clock()
            history: list[dict[str, Any]] = []
            outbox: list[dict[str, Any]] = []
            resolved: list[dict[str, Any]] = []  # notification events: Alertmanager hears of it
            for row in rows:
                matched += 1
                change = change_for(row, now)
                if change is None:
                    skipped += 1
                    continue
                from_status = row.status
                for column, value in {**change.values, "status": target.value, "updated_at": now}.items():
                    setattr(row, column, value)
                row.version += 1
                history.append(
                    {
                        "exception_id": row.id,
                        "at": now,
                        "actor": actor,
                        "action": action.value,
                        "from_status": from_status,
                        "to_status": target.value,
                        "fields": change.fields,
                    }
                )
                if action is Action.RESOLVE:
                    outcome = outcome_of(row)
                    key = f"resolved:{row.resolution_count}"  # as transitions.resolve records it
                    resolved.append({"exception_id": row.id, "event": "resolved", "key": key, "created_at": now})
                    outbox.append(
                        {
                            "outcome_id": outcome.id,
                            "exception_id": row.id,
                            "payload": outcome.model_dump_json(),
                            "created_at": now,
                        }
                    )
            await session.flush()
            await store.add_events(session=session, rows=history)
            await store.add_outbox_rows(session=session, rows=outbox)
            await notifications.record_events(session=session, rows=resolved)
            after_id = rows[-1].id
        changed += len(history)
        metrics.EXCEPTION_TRANSITIONS.labels(action.value).inc(len(history))
        if action is Action.RESOLVE:
            for row in rows:
                if row.status == Status.RESOLVED and row.resolved_at == now:
                    verdicts.count_resolution(
                        rule_id=row.rule_id,
                        decision=row.decision or "",
                        time_to_resolve_seconds=row.time_to_resolve_seconds or 0.0,
                    )
                    metrics.TIME_TO_RESOLVE.labels(row.severity).observe(row.time_to_resolve_seconds or 0.0)
        if len(rows) < chunk:
            break
    return BulkWork(matched=matched, changed=changed, skipped=skipped)
