"""Silences: matchers on rule, client, subject, source and severity with a start and an end.
Matching exceptions are stored and counted as always, but held out of the on-call queue and out
of notifications while the silence lasts, never dropped.

Stored, not computed: each exception's `silenced_by` names the active silence holding it (None:
none). It is set when the exception is created (the first active silence that matches), when a
silence is created already active or starts (the sweeper), and cleared when a silence is expired
or ends (every active silence is then applied again, so one that overlaps keeps holding). So the
default list is `silenced_by IS NULL`, read from a partial index, however many exceptions a
silence holds; notifications read the same flag (`is_silenced`). Only unresolved exceptions are
newly held; a silence that ends releases everything it held, so those still unresolved are back
in the queue, and their "opened" notification goes out then (see _release).

Every action on a silence (created, expired, and the sweeper's started and ended) is in its
audit trail, `silence_events`, with the actor and the time."""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.access.permissions import AGENCY_WIDE
from loopgate.resolution_api.access.scoping import acting_as
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SilenceEventRow, SilenceRow
from loopgate.resolution_api.domain_errors import Conflict, NotFound
from loopgate.resolution_api.exceptions.lifecycle import Status
from loopgate.resolution_api.notifications import store as notifications_store

SYSTEM = "system"
MATCHERS = ("rule_id", "client_id", "subject", "source", "severity")
# An exception created moments before a silence, in a transaction the silence's could not see yet
# (PostgreSQL), is caught by the sweeper's next pass: it applies active silences again to exceptions
# created this recently.
RECHECK_SECONDS = 300.0
_CREATE_LOCK = zlib.crc32(b"loopgate.silences.create")


class SilenceState(StrEnum):
    PENDING = "pending"  # starts later
    ACTIVE = "active"
    EXPIRED = "expired"  # ended, or expired early


class Matchable(Protocol):
    """What a silence matches on: an exception record or a stored exception."""

    @property
    def rule_id(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def subject(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def severity(self) -> str: ...


def state_of(silence: SilenceRow, now: dt.datetime) -> SilenceState:
    if now >= silence.ends_at:
        return SilenceState.EXPIRED
    return SilenceState.ACTIVE if now >= silence.starts_at else SilenceState.PENDING


def matches(silence: SilenceRow, exception: Matchable) -> bool:
    """Every matcher the silence has holds (match_all: it has none and matches everything)."""
    for name in MATCHERS:
        wanted = getattr(silence, name)
        if wanted is not None and str(getattr(exception, name)) != wanted:
            return False
    return True


def first_match(silences: Iterable[SilenceRow], exception: Matchable) -> str | None:
    """The id of the first silence (of those given: the active ones) that holds the exception."""
    return next((s.id for s in silences if matches(s, exception)), None)


def is_silenced(row: ExceptionRow) -> bool:
    """Whether an active silence holds the exception out of the queue and out of notifications."""
    return row.silenced_by is not None


def _match_conditions(silence: SilenceRow) -> list[sa.ColumnElement[bool]]:
    t = ExceptionRow
    columns = {"rule_id": t.rule_id, "client_id": t.client_id, "subject": t.subject, "source": t.source}
    conditions = [column == getattr(silence, name) for name, column in columns.items() if getattr(silence, name)]
    if silence.severity is not None:
        conditions.append(t.severity == silence.severity)
    return conditions


# --- queries ---------------------------------------------------------------------------------


async def active_silences(*, session: AsyncSession, now: dt.datetime) -> list[SilenceRow]:
    """Silences in force at `now`, oldest first (so the first one made holds an exception)."""
    stmt = (
        sa.select(SilenceRow)
        .where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now)
        .order_by(SilenceRow.created_at, SilenceRow.id)
    )
    return list((await session.scalars(stmt)).all())


async def _hold(*, session: AsyncSession, silence: SilenceRow, created_since: dt.datetime | None = None) -> int:
    """Hold the unresolved, unheld exceptions the silence matches; how many."""
    t = ExceptionRow
    stmt = (
        sa.update(t)
        .where(t.silenced_by.is_(None), t.status != Status.RESOLVED, *_match_conditions(silence))
        .values(silenced_by=silence.id)
        .execution_options(synchronize_session=False)
    )
    if created_since is not None:
        stmt = stmt.where(t.created_at >= created_since)
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


def released_key(silence_id: str) -> str:
    """The key of the "opened" notification event of an exception a silence released."""
    return f"opened:released:{silence_id}"


async def _release(*, session: AsyncSession, silence: SilenceRow, now: dt.datetime) -> int:
    """Release what the silence held, then let the other active silences hold what they match of
    those rows (set-wise: the released rows are matched here, not every exception once per active
    silence); how many it released. Each released exception still unresolved and held by no other
    silence gets an "opened" notification event: its opening was never told while it was silenced
    (the relay sends it under the opened notification's id, so a receiver already told is not told
    again)."""
    t = ExceptionRow
    held = (await session.execute(sa.select(*_MATCHED).where(t.silenced_by == silence.id))).all()
    if not held:
        return 0
    await session.execute(
        sa.update(t)
        .where(t.silenced_by == silence.id)
        .values(silenced_by=None)
        .execution_options(synchronize_session=False)
    )
    unresolved = [row for row in held if row.status != Status.RESOLVED]
    others = [other for other in await active_silences(session=session, now=now) if other.id != silence.id]
    rehomed = await _hold_rows(session=session, silences=others, rows=unresolved)
    await notifications_store.record_events(
        session=session,
        rows=[
            {"exception_id": row.id, "event": "opened", "key": released_key(silence.id), "created_at": now}
            for row in sorted(unresolved, key=lambda r: r.id)
            if row.id not in rehomed
        ],
    )
    return len(held)


# The columns a silence matches on, and the status: what matching in Python reads of a row.
_MATCHED = (
    ExceptionRow.id,
    ExceptionRow.rule_id,
    ExceptionRow.client_id,
    ExceptionRow.subject,
    ExceptionRow.source,
    ExceptionRow.severity,
    ExceptionRow.status,
)
_IN_CHUNK = 500


async def _hold_rows(*, session: AsyncSession, silences: Sequence[SilenceRow], rows: Sequence[Any]) -> set[str]:
    """Hold each of `rows` (with the _MATCHED columns) by the first of `silences` that matches it,
    unless something holds it meanwhile: one UPDATE per silence that holds any (a chunk of ids
    each); the ids held."""
    by_silence: dict[str, list[str]] = {}
    for row in rows:
        silence_id = first_match(silences, row) if silences else None
        if silence_id is not None:
            by_silence.setdefault(silence_id, []).append(row.id)
    t = ExceptionRow
    for silence_id, ids in by_silence.items():
        for start in range(0, len(ids), _IN_CHUNK):
            await session.execute(
                sa.update(t)
                .where(t.id.in_(ids[start : start + _IN_CHUNK]), t.silenced_by.is_(None))
                .values(silenced_by=silence_id)
                .execution_options(synchronize_session=False)
            )
    return {i for ids in by_silence.values() for i in ids}


async def count_held(*, session: AsyncSession, silence_ids: Sequence[str]) -> dict[str, int]:
    if not silence_ids:
        return {}
    stmt = (
        sa.select(ExceptionRow.silenced_by, sa.func.count())
        .where(ExceptionRow.silenced_by.in_(silence_ids))
        .group_by(ExceptionRow.silenced_by)
    )
    return {str(sid): int(n) for sid, n in (await session.execute(stmt)).all()}


def _event(silence_id: str, at: dt.datetime, actor: str, action: str, fields: dict[str, Any]) -> SilenceEventRow:
    return SilenceEventRow(silence_id=silence_id, at=at, actor=actor, action=action, fields=fields)


# --- service ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSilence:
    """A silence as asked for (validated by the route: times in order, within the allowed length)."""

    matchers: dict[str, str | None]  # MATCHERS -> value or None
    match_all: bool
    starts_at: dt.datetime
    ends_at: dt.datetime
    comment: str


class TooManySilences(Conflict):
    """The deployment's cap on pending and active silences is reached."""


async def create(
    *, db: Database, new: NewSilence, actor: str, max_silences: int, clock: Clock = utcnow
) -> tuple[SilenceRow, int]:
    """Make a silence; held at once if it is already active. (the silence, exceptions it holds).
    At most `max_silences` may be pending or active at once (TooManySilences): every create and
    every sweep matches exceptions against them. On PostgreSQL, creates take turns on a transaction
    lock, so replicas cannot pass the cap together."""
    now = clock()
    silence = SilenceRow(
        id=uuid.uuid4().hex,
        **{name: new.matchers.get(name) for name in MATCHERS},
        match_all=new.match_all,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        created_by=actor,
        comment=new.comment,
        created_at=now,
        applied=SilenceState.PENDING.value,
    )
    async with db.write() as session, session.begin():
        if db.backend == "postgresql":
            await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK})
        with acting_as(AGENCY_WIDE):  # the cap is the deployment's: every client's silences count
            live = await session.scalar(sa.select(sa.func.count()).where(SilenceRow.ends_at > now))
        if (live or 0) >= max_silences:
            raise TooManySilences(
                f"{live} silences are pending or active, the most this deployment allows "
                f"(LOOPGATE_MAX_SILENCES={max_silences}): expire one first"
            )
        session.add(silence)
        await session.flush()
        held = 0
        if state_of(silence, now) is SilenceState.ACTIVE:
            held = await _hold(session=session, silence=silence)
            silence.applied = SilenceState.ACTIVE.value
        session.add(
            _event(
                silence.id,
                now,
                actor,
                "created",
                {
                    **{name: getattr(silence, name) for name in MATCHERS},
                    "match_all": silence.match_all,
                    "starts_at": silence.starts_at.isoformat(),
                    "ends_at": silence.ends_at.isoformat(),
                    "comment": silence.comment,
                    "held": held,
                },
            )
        )
    return silence, held


async def get(*, db: Database, silence_id: str) -> tuple[SilenceRow, int]:
    async with db.read() as session, session.begin():
        silence = await session.get(SilenceRow, silence_id)
        if silence is None:
            raise NotFound(f"no silence with id {silence_id!r}")
        held = await count_held(session=session, silence_ids=[silence.id])
    return silence, held.get(silence.id, 0)


async def list_silences(
    *, db: Database, states: Sequence[SilenceState], limit: int, clock: Clock = utcnow
) -> list[tuple[SilenceRow, int]]:
    """Silences in `states` at the clock's time: those ending soonest first (the expired: the most
    recently ended first), each with the exceptions it holds."""
    now = clock()
    s = SilenceRow
    by_state = {
        SilenceState.PENDING: sa.and_(s.starts_at > now, s.ends_at > now),
        SilenceState.ACTIVE: sa.and_(s.starts_at <= now, s.ends_at > now),
        SilenceState.EXPIRED: s.ends_at <= now,
    }
    order = [s.ends_at.desc(), s.id] if SilenceState.EXPIRED in states else [s.ends_at, s.id]
    stmt = sa.select(s).where(sa.or_(*(by_state[state] for state in states))).order_by(*order).limit(limit)
    async with db.read() as session, session.begin():
        silences = list((await session.scalars(stmt)).all())
        held = await count_held(session=session, silence_ids=[x.id for x in silences])
    return [(x, held.get(x.id, 0)) for x in silences]


async def expire(*, db: Database, silence_id: str, actor: str, clock: Clock = utcnow) -> tuple[SilenceRow, int]:
    """End a silence now (a pending one never starts): what it held is back in the queue if unresolved."""
    now = clock()
    async with db.write() as session, session.begin():
        silence = await session.get(SilenceRow, silence_id, with_for_update=True, populate_existing=True)
        if silence is None:
            raise NotFound(f"no silence with id {silence_id!r}")
        if state_of(silence, now) is SilenceState.EXPIRED:
            raise Conflict(f"silence {silence_id!r} already ended at {silence.ends_at.isoformat()}")
        was = silence.ends_at
        silence.ends_at = now
        silence.expired_at = now
        silence.expired_by = actor
        released = 0
        if silence.applied == SilenceState.ACTIVE.value:
            released = await _release(session=session, silence=silence, now=now)
        silence.applied = SilenceState.EXPIRED.value
        session.add(_event(silence.id, now, actor, "expired", {"was_ending_at": was.isoformat(), "released": released}))
    return silence, 0


async def history(*, db: Database, silence_id: str) -> list[SilenceEventRow]:
    async with db.read() as session, session.begin():
        if await session.get(SilenceRow, silence_id) is None:
            raise NotFound(f"no silence with id {silence_id!r}")
        stmt = sa.select(SilenceEventRow).where(SilenceEventRow.silence_id == silence_id).order_by(SilenceEventRow.id)
        return list((await session.scalars(stmt)).all())


async def apply_due(*, db: Database, clock: Clock = utcnow) -> tuple[int, int]:
    """The sweeper's pass: silences whose start has come hold what they match, those whose end has
    come release what they held (each once, in the audit trail as the system's); and the exceptions
    created in the last RECHECK_SECONDS that a silence made meanwhile missed are held. It costs what
    changed: with nothing due and no silence made recently, two reads of the silences (a silence
    made before RECHECK_SECONDS ago was committed before any exception created since began, so
    those saw it). (started, ended)"""
    now = clock()
    s = SilenceRow
    recent = now - dt.timedelta(seconds=RECHECK_SECONDS)
    due_now = sa.and_(
        s.applied != SilenceState.EXPIRED.value,
        sa.or_(s.ends_at <= now, sa.and_(s.applied == SilenceState.PENDING.value, s.starts_at <= now)),
    )
    async with db.read() as session, session.begin():
        due = (await session.scalars(sa.select(s.id).where(due_now).limit(1))).first()
        made_recently = (
            await session.scalars(
                sa.select(s.id).where(s.created_at >= recent, s.starts_at <= now, s.ends_at > now).limit(1)
            )
        ).first()
    if due is None and made_recently is None:
        return 0, 0
    started = ended = 0
    async with db.write() as session, session.begin():
        for silence in (
            await session.scalars(sa.select(s).where(due_now).order_by(s.ends_at, s.id).with_for_update())
        ).all():
            if state_of(silence, now) is SilenceState.EXPIRED:
                released = 0
                if silence.applied == SilenceState.ACTIVE.value:
                    released = await _release(session=session, silence=silence, now=now)
                silence.applied = SilenceState.EXPIRED.value
                session.add(_event(silence.id, now, SYSTEM, "ended", {"released": released}))
                ended += 1
            else:
                held = await _hold(session=session, silence=silence)
                silence.applied = SilenceState.ACTIVE.value
                session.add(_event(silence.id, now, SYSTEM, "started", {"held": held}))
                started += 1
        if made_recently is not None:
            t = ExceptionRow
            missed = (
                await session.execute(
                    sa.select(*_MATCHED).where(
                        t.silenced_by.is_(None), t.status != Status.RESOLVED, t.created_at >= recent
                    )
                )
            ).all()
            await _hold_rows(session=session, silences=await active_silences(session=session, now=now), rows=missed)
    return started, ended
