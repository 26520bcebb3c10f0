"""/v1/silences: create, list, get, expire and the audit trail of silences (silencing.py does the
work). Operators and admins make and expire them; the service role does neither."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.db.models import SilenceRow
from loopgate.resolution_api.http.auth import CanSilence
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import Forbidden, invalid, responses
from loopgate.resolution_api.schemas import (
    SilenceCreate,
    SilenceEvent,
    SilenceHistory,
    SilencePage,
    SilenceRead,
    silence_times_problem,
)
from loopgate.resolution_api.silences import silencing
from loopgate.resolution_api.silences.silencing import MATCHERS, NewSilence, SilenceState

router = APIRouter(prefix="/v1/silences", tags=["silences"], dependencies=[Depends(reject_unstorable_params)])


def _read(silence: SilenceRow, held: int, now: dt.datetime, soon_seconds: float) -> SilenceRead:
    state = silencing.state_of(silence, now)
    ends_in = None if state is SilenceState.EXPIRED else (silence.ends_at - now).total_seconds()
    return SilenceRead(
        **{name: getattr(silence, name) for name in MATCHERS},
        id=silence.id,
        match_all=silence.match_all,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        created_at=silence.created_at,
        expired_by=silence.expired_by,
        expired_at=silence.expired_at,
        state=state.value,
        ends_in_seconds=ends_in,
        expiring_soon=state is SilenceState.ACTIVE and ends_in is not None and ends_in <= soon_seconds,
        silenced=held,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Silence exceptions matching all the matchers given, from starts_at (default now) until ends_at",
    responses=responses(400, 401, 403, 409, 413),
)
async def create_silence(body: SilenceCreate, principal: CanSilence, services: ServicesDep) -> SilenceRead:
    if body.match_all and principal.role is not Role.ADMIN:
        raise Forbidden("a match_all silence mutes every exception: only an admin may make one")
    scope = principal.scope
    if scope.clients is not None and (body.match_all or body.client_id not in scope.clients):
        raise Forbidden(
            f"a token scoped to {scope.describe()} may silence only those clients' exceptions: "
            "name one of them in client_id"
        )
    now = services.clock()
    starts_at = body.starts_at or now
    problem = silence_times_problem(starts_at, body.ends_at, now, services.settings.max_silence_seconds)
    if problem:
        field, why = problem
        raise invalid(("body", field), why, "silence_times")
    new = NewSilence(
        matchers={name: getattr(body, name) for name in MATCHERS},
        match_all=body.match_all,
        starts_at=starts_at,
        ends_at=body.ends_at,
        comment=body.comment,
    )
    silence, held = await silencing.create(
        db=services.db,
        new=new,
        actor=principal.name,
        max_silences=services.settings.max_silences,
        clock=services.clock,
    )
    return _read(silence, held, now, services.settings.silence_expiring_soon_seconds)


@router.get("", summary="List silences: those ending soonest first", responses=responses(401, 403))
async def list_silences(
    principal: CanSilence,
    services: ServicesDep,
    state: Annotated[
        list[SilenceState] | None,
        Query(description="Repeat to allow several; default: active and pending (expired: most recently ended first)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SilencePage:
    states = list(dict.fromkeys(state or [SilenceState.ACTIVE, SilenceState.PENDING]))
    found = await silencing.list_silences(db=services.db, states=states, limit=limit, clock=services.clock)
    now = services.clock()
    soon = services.settings.silence_expiring_soon_seconds
    return SilencePage(items=[_read(silence, held, now, soon) for silence, held in found])


@router.get("/{silence_id}", summary="Get one silence", responses=responses(401, 403, 404))
async def get_silence(silence_id: str, principal: CanSilence, services: ServicesDep) -> SilenceRead:
    silence, held = await silencing.get(db=services.db, silence_id=silence_id)
    return _read(silence, held, services.clock(), services.settings.silence_expiring_soon_seconds)


@router.post(
    "/{silence_id}/expire",
    summary="End a silence now: what it held is back in the queue if unresolved",
    responses=responses(401, 403, 404, 409),
)
async def expire_silence(silence_id: str, principal: CanSilence, services: ServicesDep) -> SilenceRead:
    silence, held = await silencing.expire(
        db=services.db, silence_id=silence_id, actor=principal.name, clock=services.clock
    )
    return _read(silence, held, services.clock(), services.settings.silence_expiring_soon_seconds)


@router.get(
    "/{silence_id}/history",
    summary="The audit trail of a silence: who did what, when",
    responses=responses(401, 403, 404),
)
async def silence_history(silence_id: str, principal: CanSilence, services: ServicesDep) -> SilenceHistory:
    events = await silencing.history(db=services.db, silence_id=silence_id)
    return SilenceHistory(
        silence_id=silence_id,
        events=[SilenceEvent(at=e.at, actor=e.actor, action=e.action, fields=e.fields) for e in events],
    )
