"""Work by filter (`POST /v1/exceptions/bulk`): resolve, snooze or claim every exception the list
filters match, in one request, or only count them first (a dry run).

The matches are worked in id order, a chunk per transaction (`BULK_CHUNK` rows: their rows locked,
changed in memory and written with one statement, their events published on the message bus
together, so handlers.py writes their history rows and, for a resolution, their outcomes in the
outbox with one statement each), so 10,000 exceptions take a few seconds and the intake
and the operators' own requests get their turns between chunks. Each exception changes as its
single transition would change it (lifecycle.py's rules, a version bump, one history event, one
outcome per resolution); one whose status no longer allows the action when its chunk reaches it
(a concurrent change) is left alone and counted as skipped.

Bounded (issue 23 item 5): a filter naming nothing beyond status and time (`narrows`) matches
everything, so the routes ask for an explicit `all` and the admin role; one request changes at most
LOOPGATE_BULK_MAX_ROWS exceptions. Work on a chosen set (`work_set`: the console's selected rows,
or the exact set its confirmation counted) checks each row's version as a single action's If-Match
does: a row a colleague changed meanwhile is reported for that row, the rest go on.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import Conflict, DomainError, NotFound, PreconditionFailed
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.lifecycle import TRANSITIONS, Action, Status, next_status
from loopgate.resolution_api.exceptions.store import ExceptionFilters
from loopgate.resolution_api.exceptions.transitions import Change, ChangeFor, event_of, iso
from loopgate.resolution_api.messagebus import MessageBus, UnitOfWork, default_bus

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


def narrows(filters: ExceptionFilters) -> bool:
    """Whether a filter names anything beyond status and time (severity, source, rule, client,
    assignee, queue, impact). One that does not matches everything, or nearly: the list's statuses
    and a time window such as `detected_after=1970` narrow nothing, so work by such a filter needs
    an explicit `all` and the admin role."""
    return bool(
        filters.severity
        or filters.source
        or filters.rule_id
        or filters.client_id
        or filters.assignee
        or filters.queue
        or filters.min_impact is not None
    )


class TooMany(Conflict):
    """More exceptions match than one bulk request may change (LOOPGATE_BULK_MAX_ROWS)."""

    def __init__(self, matched: int, max_rows: int) -> None:
        super().__init__(
            f"the filter matches {matched} exceptions, more than one bulk request may change "
            f"(LOOPGATE_BULK_MAX_ROWS={max_rows}): narrow the filter"
        )
        self.matched = matched
        self.max_rows = max_rows


async def count(*, db: Database, filters: ExceptionFilters, action: Action) -> int:
    """How many exceptions match the filter and may take the action now (the dry run)."""
    allowed_from, _ = TRANSITIONS[action]
    async with db.read() as session, session.begin():
        return await store.count_matching(session=session, filters=filters, statuses=[s.value for s in allowed_from])


async def snapshot(*, db: Database, filters: ExceptionFilters, action: Action, max_rows: int) -> list[tuple[str, int]]:
    """The (id, version) of every exception the filter matches that may take the action now, in id
    order: the exact set a confirmation shows and binds (TooMany past `max_rows`)."""
    allowed_from, _ = TRANSITIONS[action]
    async with db.read() as session, session.begin():
        found = await store.matching_versions(
            session=session, filters=filters, statuses=[s.value for s in allowed_from], limit=max_rows + 1
        )
    if len(found) > max_rows:
        raise TooMany(await count(db=db, filters=filters, action=action), max_rows)
    return found


@dataclass(frozen=True, slots=True)
class NotChanged:
    """One exception of a chosen set the action was not applied to, and why (the route gives its status)."""

    exception_id: str
    error: DomainError


@dataclass(frozen=True, slots=True)
class SetWork:
    """What work on a chosen set did: the rows changed (as they are now), those left and why."""

    changed: list[ExceptionRow]
    not_changed: list[NotChanged]


async def work(
    *,
    db: Database,
    filters: ExceptionFilters,
    action: Action,
    actor: str,
    change_for: ChangeFor,
    clock: Clock = utcnow,
    chunk: int = BULK_CHUNK,
    max_rows: int | None = None,
    bus: MessageBus | None = None,
) -> BulkWork:
    """Apply the action to every matching exception, a chunk per transaction; at most `max_rows`
    of them (those beyond, matching meanwhile, are left for another request)."""
    allowed_from, _ = TRANSITIONS[action]
    statuses = [s.value for s in allowed_from]
    matched = changed = skipped = 0
    after_id: str | None = None
    while max_rows is None or matched < max_rows:
        limit = chunk if max_rows is None else min(chunk, max_rows - matched)
        async with (bus or default_bus()).unit_of_work(db) as uow:
            rows = await store.lock_matching(
                session=uow.session, filters=filters, statuses=statuses, after_id=after_id, limit=limit
            )
            if not rows:
                break
            now = clock()
            applied = await _apply(uow, rows, action=action, actor=actor, change_for=change_for, now=now)
            after_id = rows[-1].id
        matched += len(rows)
        changed += len(applied)
        skipped += len(rows) - len(applied)
        if len(rows) < limit:
            break
    return BulkWork(matched=matched, changed=changed, skipped=skipped)


async def work_set(
    *,
    db: Database,
    versions: dict[str, int | None],
    action: Action,
    actor: str,
    change_for: ChangeFor,
    clock: Clock = utcnow,
    chunk: int = BULK_CHUNK,
    bus: MessageBus | None = None,
) -> SetWork:
    """Apply the action to exactly the exceptions chosen (id -> the version the chooser saw, or
    None), a chunk per transaction, each checked as its single transition checks it: one changed
    since it was seen (another version) is a PreconditionFailed for that row, one whose status no
    longer allows the action a Conflict, an unknown one NotFound; the rest go on."""
    ids = sorted(versions)
    changed: list[ExceptionRow] = []
    not_changed: list[NotChanged] = []
    for start in range(0, len(ids), chunk):
        wanted = ids[start : start + chunk]
        async with (bus or default_bus()).unit_of_work(db) as uow:
            found = {row.id: row for row in await store.lock_exceptions(session=uow.session, ids=wanted)}
            now = clock()
            eligible = []
            for exception_id in wanted:
                row = found.get(exception_id)
                seen = versions[exception_id]
                if row is None:
                    not_changed.append(NotChanged(exception_id, NotFound(f"no exception with id {exception_id!r}")))
                elif seen is not None and row.version != seen:
                    not_changed.append(
                        NotChanged(
                            exception_id,
                            PreconditionFailed(
                                f'exception {exception_id!r} changed since it was chosen (version "{seen}", now '
                                f'"{row.version}"): nothing was done to it'
                            ),
                        )
                    )
                else:
                    try:
                        next_status(action, Status(row.status))
                    except DomainError as err:
                        not_changed.append(NotChanged(exception_id, err))
                        continue
                    eligible.append(row)
            applied = await _apply(uow, eligible, action=action, actor=actor, change_for=change_for, now=now)
        changed += applied
    return SetWork(changed=changed, not_changed=not_changed)


async def _apply(
    uow: UnitOfWork,
    rows: list[ExceptionRow],
    *,
    action: Action,
    actor: str,
    change_for: ChangeFor,
    now: dt.datetime,
) -> list[ExceptionRow]:
    """Change the locked `rows` as their single transitions would, written with one flush, and
    publish their events (handlers.py writes what follows, a statement per handler for them all).
    The rows changed (those whose change_for returns None are left as they are)."""
    _, target = TRANSITIONS[action]
    applied: list[ExceptionRow] = []
    for row in rows:
        change = change_for(row, now)
        if change is None:
            continue
        from_status = row.status
        for column, value in {**change.values, "status": target.value, "updated_at": now}.items():
            setattr(row, column, value)
        row.version += 1
        applied.append(row)
        uow.publish(event_of(action, row, at=now, actor=actor, from_status=from_status, fields=change.fields))
    await uow.session.flush()
    return applied
