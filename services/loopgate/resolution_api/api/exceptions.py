"""/v1/exceptions: create (idempotent, grouped), list, get, work (claim, resolve, escalate, snooze,
reopen, bulk-resolve) and history. Thin: parse, call the service layer (creation via the intake,
reading.py, transitions.py) with the app's clock, answer with the ETag; errors.py turns the domain
errors it raises into HTTP."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints

from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import InvalidRequest
from loopgate.resolution_api.exceptions import bulk_work as bulk_work_service
from loopgate.resolution_api.exceptions import reading, transitions
from loopgate.resolution_api.exceptions.batch import InvalidRecord, read_batch
from loopgate.resolution_api.exceptions.creation import CreateResult
from loopgate.resolution_api.exceptions.cursor import Sort
from loopgate.resolution_api.exceptions.lifecycle import Action, Status
from loopgate.resolution_api.exceptions.store import ExceptionFilters
from loopgate.resolution_api.http.auth import CanBulkWork, CanCreate, CanRead, CanReopen, CanWork
from loopgate.resolution_api.http.conditional import etag, parse_if_match
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import Forbidden, invalid, record_error, responses, status_of, validation_body
from loopgate.resolution_api.schemas import (
    BatchResult,
    BulkFailure,
    BulkResolveRequest,
    BulkResolveResult,
    BulkWorkRequest,
    BulkWorkResult,
    ClaimRequest,
    EscalateRequest,
    ExceptionCreate,
    ExceptionCreated,
    ExceptionPage,
    ExceptionRead,
    History,
    HistoryEvent,
    RecordWindow,
    ReopenRequest,
    ResolveRequest,
    Rfc3339,
    SilencedFilter,
    SnoozeRequest,
    ValidationErrorBody,
    snooze_in_past,
    snooze_too_long,
)
from loopgate_schemas.exceptions import Severity

router = APIRouter(prefix="/v1/exceptions", tags=["exceptions"], dependencies=[Depends(reject_unstorable_params)])

IfMatch = Annotated[
    str | None,
    Header(description='Only change the exception if its ETag (version, e.g. "3") still matches'),
]
ETAG_HEADER = {"ETag": {"description": "The exception's version", "schema": {"type": "string"}}}
WORK_ERRORS = responses(400, 401, 403, 404, 409, 412, 413)


def _answer(response: Response, row: ExceptionRow) -> ExceptionRead:
    response.headers["ETag"] = etag(row.version)
    return ExceptionRead.from_row(row)


def _created(row: ExceptionRow, result: CreateResult) -> bytes:
    """A create's answer (ExceptionCreated): the id, the result and the version, nothing more."""
    return orjson.dumps({"id": row.id, "result": result.value, "version": row.version})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Receive an exception record",
    response_model=ExceptionCreated,
    response_description="A new exception was opened",
    responses={
        200: {
            "model": ExceptionCreated,
            "description": "Already received (same exception_id), or grouped as an occurrence of the "
            "unresolved exception with the same fingerprint",
        },
        **responses(400, 401, 403, 413, 503),
    },
)
async def create_exception(record: ExceptionCreate, principal: CanCreate, services: ServicesDep) -> Response:
    problem = RecordWindow.of(services.settings).problem(record, services.clock())
    if problem is not None:
        raise RequestValidationError([problem])
    row, result = await services.intake.submit(record, principal.name)
    # Returned as a Response, FastAPI neither validates nor serializes it again (the declared
    # ExceptionCreated documents it).
    return Response(
        content=_created(row, result),
        media_type="application/json",
        status_code=201 if result is CreateResult.CREATED else 200,
        headers={
            "Location": f"/v1/exceptions/{quote(row.id, safe='')}",
            "Loopgate-Result": result.value,
            "ETag": etag(row.version),
        },
    )


@router.post(
    "/batch",
    summary="Receive many exception records at once, each answered as a single create would",
    response_model=BatchResult,
    response_description="Each record's result, in order: created, duplicate, grouped, or its own error",
    responses={
        422: {
            "model": ValidationErrorBody,
            "description": "Not a batch, or more records than LOOPGATE_BATCH_MAX_RECORDS",
        },
        **responses(401, 403, 413, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExceptionBatch"}}},
        }
    },
)
async def create_exceptions_batch(request: Request, principal: CanCreate, services: ServicesDep) -> Response:
    # The body is read here, not by a model: one bad record must fail alone (batch.py).
    window, now = RecordWindow.of(services.settings), services.clock()
    items = read_batch(
        await request.body(),
        max_records=services.settings.batch_max_records,
        check=lambda record: window.problem(record, now),
    )
    valid = [item for item in items if isinstance(item, ExceptionCreate)]
    stored = iter(await services.intake.submit_many(list(valid), principal.name))
    parts: list[bytes] = []
    for item in items:
        if isinstance(item, InvalidRecord):
            error = item.body or validation_body(item.errors)
            parts.append(b'{"status":422,"result":null,"body":' + orjson.dumps(error) + b"}")
            continue
        answer = next(stored)
        if isinstance(answer, BaseException):
            failed = record_error(answer) if isinstance(answer, Exception) else None
            if failed is None:
                raise answer  # not the record's fault: the whole request fails (e.g. 503)
            code, body = failed
            parts.append(b'{"status":%d,"result":null,"body":%b}' % (code, orjson.dumps(body)))
            continue
        row, result = answer
        code = 201 if result is CreateResult.CREATED else 200
        parts.append(b'{"status":%d,"result":"%b","body":%b}' % (code, result.value.encode(), _created(row, result)))
    return Response(content=b'{"results":[' + b",".join(parts) + b"]}", media_type="application/json")


@router.get(
    "",
    summary="List exceptions: newest first, or by severity then impact, or by impact",
    responses=responses(400, 401, 403),
)
async def list_exceptions(
    principal: CanRead,
    services: ServicesDep,
    status: Annotated[list[Status] | None, Query(description="Repeat to allow several")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Repeat to allow several")] = None,
    source: Annotated[str | None, Query(max_length=255)] = None,
    rule_id: Annotated[str | None, Query(max_length=64)] = None,
    client_id: Annotated[str | None, Query(max_length=255)] = None,
    assignee: Annotated[str | None, Query(max_length=255)] = None,
    detected_after: Annotated[
        Rfc3339 | None,
        Query(description="Only exceptions first detected at or after this time (RFC 3339, with an offset)"),
    ] = None,
    detected_before: Annotated[
        Rfc3339 | None,
        Query(description="Only exceptions first detected before this time (RFC 3339, with an offset)"),
    ] = None,
    queue: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=255)]] | None,
        Query(description="Only exceptions routed to this queue; repeat to allow several"),
    ] = None,
    silenced: Annotated[
        SilencedFilter,
        Query(
            description="false (the default, the on-call queue): only exceptions no silence holds; true: only the "
            "silenced ones; all: both"
        ),
    ] = SilencedFilter.FALSE,
    min_impact: Annotated[
        float | None,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="Only exceptions whose impact amount is at least this (amounts are compared as they are, "
            "whatever their currency); exceptions without an impact never match",
        ),
    ] = None,
    sort: Annotated[
        Sort,
        Query(
            description="newest: newest first. severity: the queue's order, most severe first, then largest impact "
            "(those without one last), then newest. impact: largest impact first (those without one last), then "
            "newest. Impact amounts are compared as they are, whatever their currency. A cursor only continues "
            "the order it came from."
        ),
    ] = Sort.NEWEST,
    cursor: Annotated[str | None, Query(max_length=1000, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ExceptionPage:
    if detected_after and detected_before and detected_after >= detected_before:
        raise InvalidRequest(
            f"detected_after ({detected_after.isoformat()}) must be before "
            f"detected_before ({detected_before.isoformat()})"
        )
    filters = ExceptionFilters(
        status=[s.value for s in status or ()],
        severity=[s.value for s in severity or ()],
        source=source,
        rule_id=rule_id,
        client_id=client_id,
        assignee=assignee,
        detected_after=detected_after,
        detected_before=detected_before,
        min_impact=min_impact,
        queue=list(queue or ()),
        silenced=silenced.as_filter(),
    )
    rows, next_cursor = await reading.list_page(db=services.db, filters=filters, sort=sort, cursor=cursor, limit=limit)
    return ExceptionPage(items=[ExceptionRead.from_row(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/bulk-resolve",
    summary="Resolve several exceptions (by ids, or every unresolved one with a fingerprint)",
    responses=responses(400, 401, 403, 413),
)
async def bulk_resolve(body: BulkResolveRequest, principal: CanBulkWork, services: ServicesDep) -> BulkResolveResult:
    resolved, failed = await transitions.bulk_resolve(
        db=services.db,
        ids=body.ids,
        fingerprint=body.fingerprint,
        actor=principal.name,
        resolution=transitions.ResolutionInput(body.decision, body.reason, body.correction),
        clock=services.clock,
        versions=body.versions,
        bus=services.bus,
    )
    return BulkResolveResult(
        resolved=[ExceptionRead.from_row(r) for r in resolved],
        failed=[BulkFailure(id=f.exception_id, status_code=status_of(f.error), detail=f.error.message) for f in failed],
    )


@router.post(
    "/bulk",
    summary="Resolve, snooze or claim every exception matching a filter (dry_run: only count them)",
    responses=responses(400, 401, 403, 413),
)
async def bulk_work(body: BulkWorkRequest, principal: CanBulkWork, services: ServicesDep) -> BulkWorkResult:
    action = Action(body.action)
    f = body.filter
    filters = ExceptionFilters(
        status=[s.value for s in f.status],
        severity=[s.value for s in f.severity],
        source=f.source,
        rule_id=f.rule_id,
        client_id=f.client_id,
        assignee=f.assignee,
        detected_after=f.detected_after,
        detected_before=f.detected_before,
    )
    if not bulk_work_service.narrows(filters):
        if not body.all:
            raise invalid(
                ("body", "filter"),
                "names nothing beyond status and time, so it matches every exception: name a severity, source, "
                "rule_id, client_id or assignee, or send all: true (admin only)",
                "filter_too_broad",
            )
        if principal.role is not Role.ADMIN:
            raise Forbidden("all: true works on every exception: only an admin may")
    max_rows = services.settings.bulk_max_rows
    matched = await bulk_work_service.count(db=services.db, filters=filters, action=action)
    if body.dry_run:
        return BulkWorkResult(
            action=action.value, dry_run=True, matched=matched, changed=0, skipped=0, max_rows=max_rows
        )
    if matched > max_rows:
        raise invalid(("body", "filter"), str(bulk_work_service.TooMany(matched, max_rows)), "bulk_too_many")
    if action is Action.RESOLVE:
        assert body.decision is not None  # the request's validator requires it
        resolution = transitions.ResolutionInput(body.decision, body.reason, body.correction)
        change_for = transitions.resolve_change(principal.name, resolution)
    elif action is Action.SNOOZE:
        assert body.until is not None
        now = services.clock()
        problem = snooze_in_past(body.until, now) or snooze_too_long(
            body.until, now, services.settings.max_snooze_seconds
        )
        if problem:
            raise invalid(("body", "until"), problem.removeprefix("until: "), "snooze_invalid")
        change_for = bulk_work_service.snooze_change(body.until, body.reason)
    else:
        change_for = bulk_work_service.claim_change(body.assignee or principal.name)
    done = await bulk_work_service.work(
        db=services.db,
        filters=filters,
        action=action,
        actor=principal.name,
        change_for=change_for,
        clock=services.clock,
        max_rows=max_rows,
        bus=services.bus,
    )
    return BulkWorkResult(
        action=action.value,
        dry_run=False,
        matched=done.matched,
        changed=done.changed,
        skipped=done.skipped,
        max_rows=max_rows,
    )


@router.get(
    "/{exception_id}",
    summary="Get one exception",
    responses={200: {"headers": ETAG_HEADER}, **responses(401, 403, 404)},
)
async def get_exception(
    exception_id: str, principal: CanRead, services: ServicesDep, response: Response
) -> ExceptionRead:
    return _answer(response, await reading.get(db=services.db, exception_id=exception_id))


@router.get(
    "/{exception_id}/history",
    summary="The changes of one exception, oldest first, a page at a time",
    responses=responses(400, 401, 403, 404),
)
async def get_history(
    exception_id: str,
    principal: CanRead,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=reading.HISTORY_PAGE_MAX)] = reading.HISTORY_PAGE,
) -> History:
    events, next_cursor = await reading.history_page(
        db=services.db, exception_id=exception_id, cursor=cursor, limit=limit
    )
    return History(exception_id=exception_id, items=[HistoryEvent.from_row(e) for e in events], next_cursor=next_cursor)


@router.post("/{exception_id}/claim", summary="Claim (assign) an exception", responses=WORK_ERRORS)
async def claim_exception(
    exception_id: str,
    principal: CanWork,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
    body: Annotated[ClaimRequest | None, Body()] = None,
) -> ExceptionRead:
    row = await transitions.claim(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        assignee=(body.assignee if body else None) or principal.name,
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)


@router.post(
    "/{exception_id}/unclaim",
    summary="Give a claimed exception back to the queue (its assignee, or an admin)",
    responses=WORK_ERRORS,
)
async def unclaim_exception(
    exception_id: str,
    principal: CanWork,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
) -> ExceptionRead:
    row = await transitions.unclaim(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        may_unclaim_others=principal.role is Role.ADMIN,
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)


@router.post(
    "/{exception_id}/resolve",
    summary="Resolve an exception for good; its outcome is published on exception-outcomes",
    responses=WORK_ERRORS,
)
async def resolve_exception(
    exception_id: str,
    body: ResolveRequest,
    principal: CanWork,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
) -> ExceptionRead:
    row = await transitions.resolve(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        resolution=transitions.ResolutionInput(body.decision, body.reason, body.correction),
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)


@router.post("/{exception_id}/escalate", summary="Escalate an exception", responses=WORK_ERRORS)
async def escalate_exception(
    exception_id: str,
    body: EscalateRequest,
    principal: CanWork,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
) -> ExceptionRead:
    row = await transitions.escalate(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        reason=body.reason,
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)


@router.post("/{exception_id}/snooze", summary="Snooze an exception until a time", responses=WORK_ERRORS)
async def snooze_exception(
    exception_id: str,
    body: SnoozeRequest,
    principal: CanWork,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
) -> ExceptionRead:
    now = services.clock()
    past = snooze_in_past(body.until, now)
    if past:
        raise invalid(("body",), past, "snooze_in_past")
    problem = snooze_too_long(body.until, now, services.settings.max_snooze_seconds)
    if problem:
        raise invalid(("body", "until"), problem.removeprefix("until: "), "snooze_too_long")
    row = await transitions.snooze(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        until=body.until,
        reason=body.reason,
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)


@router.post("/{exception_id}/reopen", summary="Reopen a resolved exception (admin)", responses=WORK_ERRORS)
async def reopen_exception(
    exception_id: str,
    body: ReopenRequest,
    principal: CanReopen,
    services: ServicesDep,
    response: Response,
    if_match: IfMatch = None,
) -> ExceptionRead:
    row = await transitions.reopen(
        db=services.db,
        exception_id=exception_id,
        actor=principal.name,
        reason=body.reason,
        if_match=parse_if_match(if_match),
        clock=services.clock,
        bus=services.bus,
    )
    return _answer(response, row)
