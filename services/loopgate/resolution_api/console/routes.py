"""/console: sign-in and sign-out, the queue, one exception and its actions, bulk actions.

Thin, like the API's routes: read the form, check the session, its role and the CSRF value, call
the service layer (reading, transitions, bulk_work) with the app's clock, render a template. A
stale page (its version no longer the exception's) gets "changed by someone else", never an
overwrite: every action sends the version the page was rendered from as If-Match."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import ValidationError
from starlette.datastructures import FormData

from loopgate.common import metrics
from loopgate.common.decisions import ESCALATE_ACTION_HELP, decision_label
from loopgate.resolution_api.access.permissions import Permission, Role, allows
from loopgate.resolution_api.access.scoping import act_as
from loopgate.resolution_api.access.tokens import Principal
from loopgate.resolution_api.console import confirmation, return_to, session, views
from loopgate.resolution_api.console.capabilities import offered_to, scope_text
from loopgate.resolution_api.console.queue import PAGE_SIZE, SEVERITIES, STATUSES, BadQuery, QueueQuery, counts
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow
from loopgate.resolution_api.domain_errors import Conflict, DomainError, NotAllowed, NotFound, PreconditionFailed
from loopgate.resolution_api.exceptions import bulk_work, reading, store, transitions
from loopgate.resolution_api.exceptions.cursor import Sort
from loopgate.resolution_api.exceptions.lifecycle import Action, Status
from loopgate.resolution_api.http.deps import Services, get_services
from loopgate.resolution_api.review.blind import see_as
from loopgate.resolution_api.schemas import ExceptionRead, ResolveRequest, SilenceCreate, snooze_too_long
from loopgate.resolution_api.silences import silencing
from loopgate.resolution_api.silences.silencing import NewSilence, SilenceState
from loopgate_schemas.outcomes import Decision

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(
    severities=SEVERITIES,
    statuses=STATUSES,
    decisions=[d.value for d in Decision],
    decision_labels={d.value: decision_label(d) for d in Decision},
    escalate_help=ESCALATE_ACTION_HELP,
)
router = APIRouter(prefix="/console", include_in_schema=False)
SNOOZE_HOURS = (1, 4, 24)
HISTORY_PAGE = 50  # events on the exception's page; the rest a page at a time behind "More history"
MAX_FORM_FIELDS = 600


def install(app: FastAPI) -> None:
    """Serve the console on `app`: its pages and its static files."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
    )
    return response


def _to_sign_in(request: Request) -> RedirectResponse:
    """To the sign-in page, which returns to this page (a GET) afterwards (return_to.py)."""
    if request.method != "GET":
        return RedirectResponse("/console/sign-in", status_code=303)
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    return RedirectResponse(return_to.sign_in_url(path, request.url.query), status_code=303)


def _refused(request: Request, message: str) -> HTMLResponse:
    return _page(request, "message.html", {"title": "Refused", "message": message, "user": None}, 403)


async def _form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


def _text(form: FormData, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _session(request: Request, *, need: Permission) -> tuple[Services, Principal, str] | Response:
    """The signed-in principal and the CSRF value of its session's forms, or where to go instead."""
    services = await get_services(request)
    found = await session.signed_in(request, services)
    if found is None:
        return _to_sign_in(request)
    principal = found.principal
    request.state.console_session_hash = found.session_hash  # the bulk confirmation's key (confirmation.py)
    act_as(principal.scope)  # every query of this page sees only what the session's token may (scoping.py)
    see_as(principal.name)  # and no decision sealed for a second review but its own (review/blind.py)
    if not allows(principal.role, need):
        return _refused(request, f"Your token's role ({principal.role.value}) may not {need.value}.")
    return services, principal, found.csrf


def _context(principal: Principal, csrf: str, **more: Any) -> dict[str, Any]:
    offered = offered_to(principal)
    return {
        "user": principal,
        "user_scope": scope_text(principal),
        "csrf": csrf,
        "can_work": offered.work,
        "can_bulk": offered.bulk,
        "can_silence": offered.silences,
        **more,
    }


async def _checked_post(request: Request, need: Permission) -> tuple[Services, Principal, str, FormData] | Response:
    """A signed-in POST: its session, role and CSRF value checked; its form read."""
    found = await _session(request, need=need)
    if isinstance(found, Response):
        if found.status_code == 303:
            return _refused(request, "Your session has ended: sign in again.")
        return found
    services, principal, csrf = found
    form = await _form(request)
    if not session.same(csrf, _text(form, "csrf", 200)):
        return _refused(request, "This form has no valid CSRF token: reload the page and try again.")
    return services, principal, csrf, form


# --- sign-in -----------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=303)


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    services = await get_services(request)
    response = _page(request, "sign_in.html", {"user": None, "error": None})
    csrf = session.sign_in_csrf(request, response, secure=services.settings.console_secure_cookie)
    next_page = return_to.safe_next(request.query_params.get("next"))
    context = {"user": None, "error": None, "csrf": csrf, "sso_name": _sso_name(services), "next": next_page}
    return _page_with(request, "sign_in.html", context, response)


def _sso_name(services: Services) -> str | None:
    """The identity provider's name for the sign-in page's button; None without single sign-on."""
    return services.sso.config.provider_name if services.sso is not None else None


def _page_with(request: Request, name: str, context: dict[str, Any], carrier: Response, status: int = 200) -> Response:
    """Render `name` keeping the cookies `carrier` already set."""
    page = _page(request, name, context, status)
    for key, value in carrier.raw_headers:
        if key == b"set-cookie":
            page.raw_headers.append((key, value))
    return page


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    services = await get_services(request)
    secure = services.settings.console_secure_cookie
    form = await _form(request)
    if not session.same(request.cookies.get(session.SIGN_IN_CSRF_COOKIE), _text(form, "csrf", 200)):
        return _refused(request, "The sign-in form has no valid CSRF token: reload the page and try again.")
    token = _text(form, "token", 300).strip()
    next_page = return_to.safe_next(_text(form, "next", return_to.MAX_NEXT_CHARACTERS + 1))
    principal = await services.tokens.verify(token) if token and len(token) < 200 else None
    error = None
    if principal is None:
        error = "That token is unknown or revoked."
    elif not allows(principal.role, Permission.READ):
        error = f"A {principal.role.value} token cannot sign in to the console: use a person's token."
    if error:
        carrier = Response()
        csrf = session.sign_in_csrf(request, carrier, secure=secure)
        context = {"user": None, "error": error, "csrf": csrf, "sso_name": _sso_name(services), "next": next_page}
        return _page_with(request, "sign_in.html", context, carrier, 401)
    response = RedirectResponse(next_page or return_to.DEFAULT_PAGE, status_code=303)
    await session.start_session(services, response, token, secure=secure)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    checked = await _checked_post(request, Permission.READ)
    if isinstance(checked, Response):
        return checked
    services = checked[0]
    found = await session.signed_in(request, services)
    response = RedirectResponse("/console/sign-in", status_code=303)
    if found is not None:
        await session.end_session(services, response, found, secure=services.settings.console_secure_cookie)
    return response


# --- the queue ---------------------------------------------------------------------------------


@router.get("/queue")
async def queue_page(request: Request) -> Response:
    found = await _session(request, need=Permission.READ)
    if isinstance(found, Response):
        return found
    services, principal, token = found
    try:
        query = QueueQuery.from_params(request.query_params)
        rows, next_cursor = await reading.list_page(
            db=services.db, filters=query.filters(), sort=Sort(query.sort), cursor=query.cursor or None, limit=PAGE_SIZE
        )
    except (BadQuery, DomainError) as err:
        message = err.message if isinstance(err, DomainError) else str(err)
        return _page(request, "message.html", _context(principal, token, title="Bad filter", message=message), 400)
    now = services.clock()
    can_bulk = offered_to(principal).bulk
    items = [_queue_row(services, row, index, now, can_bulk) for index, row in enumerate(rows, start=1)]
    context = _context(
        principal,
        token,
        query=query,
        rows=items,
        next_cursor=next_cursor,
        counts=await counts(db=services.db, query=query),
        notice=_text(request.query_params, "notice", 300),  # type: ignore[arg-type]
    )
    return _page(request, "queue.html", context)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A row of the queue: its HTML, or why it cannot be shown (the rest of the page still is)."""

    exception_id: str
    html: Markup | None = None
    reason: str = ""


def _queue_row(services: Services, row: ExceptionRow, index: int, now: dt.datetime, can_bulk: bool) -> QueueRow:
    """One row rendered on its own, so a row that cannot be (a date that overflows, a value no longer
    of its type) is shown as such with its id and reason, and counted, instead of failing the page."""
    try:
        sla = views.sla_countdown(
            status=Status(row.status),
            first_seen=row.first_seen,
            policy=services.settings.slas[row.severity],  # type: ignore[index]
            now=now,
        )
        exc = ExceptionRead.from_row(row)
        html = templates.env.get_template("_queue_row.html").render(exc=exc, sla=sla, index=index, can_bulk=can_bulk)
    except Exception as err:  # one bad row: shown as such, never the whole queue failing
        return _set_aside("console_queue", row.id, err)
    return QueueRow(exception_id=row.id, html=Markup(html))


def _set_aside(where: str, exception_id: str, err: Exception) -> QueueRow:
    reason = f"{type(err).__name__}: {err}"[:300]
    metrics.ROWS_SET_ASIDE.labels(where).inc()
    log.warning("%s: exception %r cannot be shown: %s", where, exception_id, reason.replace("\n", " "))
    return QueueRow(exception_id=exception_id, reason=reason)


# --- one exception -----------------------------------------------------------------------------


async def _exception_page(
    request: Request,
    services: Services,
    principal: Principal,
    token: str,
    exception_id: str,
    *,
    notice: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    try:
        row = await reading.get(db=services.db, exception_id=exception_id)
        history, history_next = await reading.history_page(
            db=services.db, exception_id=exception_id, cursor=None, limit=HISTORY_PAGE
        )
    except NotFound as err:
        return _page(request, "message.html", _context(principal, token, title="Not found", message=err.message), 404)
    try:
        context = _exception_context(services, principal, token, row, history, history_next, notice, error)
        return _page(request, "exception.html", context, status_code)  # rendered here: a failure is this row's
    except Exception as err:  # one bad row: its page says why, never a 500
        unshown = _set_aside("console_exception", row.id, err)
        message = f"Exception {row.id} cannot be shown: {unshown.reason}. The API still serves it as JSON."
        return _page(request, "message.html", _context(principal, token, title="Cannot show", message=message))


def _exception_context(
    services: Services,
    principal: Principal,
    token: str,
    row: ExceptionRow,
    history: list[ExceptionEventRow],
    history_next: str | None,
    notice: str,
    error: str,
) -> dict[str, Any]:
    exc = ExceptionRead.from_row(row)
    event_data = (exc.event or {}).get("data") if isinstance((exc.event or {}).get("data"), dict) else {}
    caption = None
    if isinstance(event_data, dict) and isinstance(event_data.get("caption"), str):
        limit = (exc.threshold or {}).get("max_length") if exc.rule_id == "caption_too_long" else None
        claims = event_data.get("product_claims") or []
        caption = {
            "segments": views.caption_segments(
                event_data["caption"],
                limit=limit if isinstance(limit, int) else None,
                claims=[c for c in claims if isinstance(c, str)],
            ),
            "length": len(event_data["caption"]),
            "limit": limit,
            "platform": event_data.get("platform"),
            "client": event_data.get("client_id"),
        }
    fields = views.editable_fields(exc.event)
    context = _context(
        principal,
        token,
        exc=exc,
        exc_id=exc.id,
        history=history,
        history_next=history_next,
        caption=caption,
        fields={name: views.shown(value) for name, value in fields.items()},
        long_fields={name for name, value in fields.items() if isinstance(value, list) or len(views.shown(value)) > 60},
        sla=views.sla_countdown(
            status=exc.status,
            first_seen=exc.first_seen,
            policy=services.settings.slas[exc.severity],
            now=services.clock(),
        ),
        snooze_hours=SNOOZE_HOURS,
        silence_hours=SILENCE_HOURS,
        notice=notice,
        error=error,
        event_json=_pretty(exc.event),
    )
    return context


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@router.get("/exceptions/{exception_id}")
async def exception_page(request: Request, exception_id: str) -> Response:
    found = await _session(request, need=Permission.READ)
    if isinstance(found, Response):
        return found
    services, principal, token = found
    notice = _text(request.query_params, "notice", 300)  # type: ignore[arg-type]
    return await _exception_page(request, services, principal, token, exception_id, notice=notice)


@router.get("/exceptions/{exception_id}/history")
async def history_page(request: Request, exception_id: str) -> Response:
    found = await _session(request, need=Permission.READ)
    if isinstance(found, Response):
        return found
    services, principal, token = found
    cursor = _text(request.query_params, "cursor", 300) or None  # type: ignore[arg-type]
    try:
        history, history_next = await reading.history_page(
            db=services.db, exception_id=exception_id, cursor=cursor, limit=HISTORY_PAGE
        )
    except NotFound as err:
        return _page(request, "message.html", _context(principal, token, title="Not found", message=err.message), 404)
    except DomainError as err:
        return _page(request, "message.html", _context(principal, token, title="Bad page", message=err.message), 400)
    context = _context(principal, token, exc_id=exception_id, history=history, history_next=history_next)
    return _page(request, "history.html", context)


def _version(form: FormData) -> frozenset[int]:
    text = _text(form, "version", 20)
    if not text.isascii() or not text.isdigit():
        raise PreconditionFailed("the page did not say which version it showed")
    return frozenset({int(text)})


@router.post("/exceptions/{exception_id}/{action}")
async def act(request: Request, exception_id: str, action: str) -> Response:
    checked = await _checked_post(request, Permission.WORK)
    if isinstance(checked, Response):
        return checked
    services, principal, token, form = checked
    try:
        done = await _apply(services, principal, exception_id, action, form)
    except views.BadEdit as err:
        return await _exception_page(
            request, services, principal, token, exception_id, error=f"Correction: {err}", status_code=400
        )
    except ValidationError as err:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        return await _exception_page(request, services, principal, token, exception_id, error=problems, status_code=400)
    except PreconditionFailed:
        return await _exception_page(
            request,
            services,
            principal,
            token,
            exception_id,
            error="This exception was changed by someone else since your page was loaded; nothing was changed. "
            "Here it is as it is now: check it and try again.",
            status_code=409,
        )
    except Conflict as err:
        return await _exception_page(
            request, services, principal, token, exception_id, error=err.message, status_code=409
        )
    except NotFound as err:
        return _page(request, "message.html", _context(principal, token, title="Not found", message=err.message), 404)
    except NotAllowed as err:
        return await _exception_page(
            request, services, principal, token, exception_id, error=err.message, status_code=403
        )
    except DomainError as err:
        return await _exception_page(
            request, services, principal, token, exception_id, error=err.message, status_code=400
        )
    return RedirectResponse(_with_notice(f"/console/exceptions/{quote(exception_id, safe='')}", done), status_code=303)


async def _apply(services: Services, principal: Principal, exception_id: str, action: str, form: FormData) -> str:
    """Do the action the form asks for; what was done, for the page's notice."""
    if_match = _version(form)
    common: dict[str, Any] = {
        "db": services.db,
        "exception_id": exception_id,
        "actor": principal.name,
        "if_match": if_match,
        "clock": services.clock,
        "bus": services.bus,
    }
    if action == Action.CLAIM:
        await transitions.claim(**common, assignee=principal.name)
        return "Claimed"
    if action == Action.UNCLAIM:
        await transitions.unclaim(**common, may_unclaim_others=principal.role is Role.ADMIN)
        return "Unclaimed: back in the queue"
    if action == Action.RESOLVE:
        row = await reading.get(db=services.db, exception_id=exception_id)
        before = views.editable_fields(row.event)
        edits = {name: _text(form, f"after.{name}", 100_000) for name in before if f"after.{name}" in form}
        request = ResolveRequest.model_validate(
            {
                "decision": _text(form, "decision", 40),
                "reason": _text(form, "reason"),
                "correction": views.correction_from_edits(before, edits),
            }
        )
        await transitions.resolve(
            **common, resolution=transitions.ResolutionInput(request.decision, request.reason, request.correction)
        )
        return f"Resolved ({request.decision.value})"
    if action == Action.ESCALATE:
        reason = _text(form, "reason").strip()
        if not reason:
            raise DomainError("Escalating needs a reason.")
        await transitions.escalate(**common, reason=reason)
        return "Escalated"
    if action == Action.SNOOZE:
        hours = _text(form, "hours", 4)
        if hours not in {str(h) for h in SNOOZE_HOURS}:
            raise DomainError(f"Snooze for {', '.join(map(str, SNOOZE_HOURS))} hours.")
        now = services.clock()
        until = now + dt.timedelta(hours=int(hours))
        problem = snooze_too_long(until, now, services.settings.max_snooze_seconds)
        if problem:
            raise DomainError(problem)
        await transitions.snooze(**common, until=until, reason=_text(form, "reason"))
        return f"Snoozed for {hours} h"
    raise NotFound(f"no console action {action!r}")


# --- bulk --------------------------------------------------------------------------------------


BULK_ACTIONS = {"resolve": Action.RESOLVE, "claim": Action.CLAIM}


@router.post("/bulk")
async def bulk(request: Request) -> Response:
    """Step one (no `confirm`): the exact set the action would change (the selected rows at the
    versions the page showed, or every row the filter matches now, at most LOOPGATE_BULK_MAX_ROWS),
    shown with its count and sealed into the confirmation (confirmation.py). Step two (`confirm`):
    do it to that set alone, each row only if its version is still the one counted."""
    checked = await _checked_post(request, Permission.WORK)
    if isinstance(checked, Response):
        return checked
    services, principal, token, form = checked
    if not offered_to(principal).bulk:
        return _refused(request, f"A {principal.role.value} works one exception at a time: no bulk actions.")

    def refused(message: str, status_code: int = 400) -> HTMLResponse:
        return _page(
            request, "message.html", _context(principal, token, title="Bulk action", message=message), status_code
        )

    try:
        query = QueueQuery.from_params({k: v for k, v in form.multi_items() if isinstance(v, str)})
    except BadQuery as err:
        return _page(request, "message.html", _context(principal, token, title="Bad filter", message=str(err)), 400)
    if _text(form, "confirm", 5):
        return await _bulk_confirmed(request, services, principal, token, form, query)
    ids = list(dict.fromkeys(v for v in form.getlist("ids") if isinstance(v, str) and v))[:500]
    scope = _text(form, "scope", 20)
    action = BULK_ACTIONS.get(_text(form, "action", 20))
    decision, reason = _text(form, "decision", 40), _text(form, "reason")
    problem = None
    if action is None:
        problem = "Choose an action."
    elif scope == "selected" and not ids:
        problem = "Select at least one exception, or act on every one the filter matches."
    elif scope == "filter" and not bulk_work.narrows(query.filters()):
        problem = "Work by filter needs a filter beyond status (severity, rule, client, source or queue)."
    elif scope not in ("selected", "filter"):
        problem = "Choose the selected exceptions or every one the filter matches."
    if problem is None and action is Action.RESOLVE:
        problem = _resolution_problem(decision, reason)
    if problem is not None or action is None:
        return refused(problem or "Choose an action.")
    if scope == "filter":
        try:
            counted = dict(
                await bulk_work.snapshot(
                    db=services.db, filters=query.filters(), action=action, max_rows=services.settings.bulk_max_rows
                )
            )
        except DomainError as err:
            return refused(err.message)
    else:
        counted = await _seen_versions(services, form, ids)
    sealed = confirmation.seal(
        confirmation.Confirmation(
            action=action.value,
            decision=decision,
            reason=reason,
            versions=counted,
            issued_at=services.clock().timestamp(),
        ),
        key=request.state.console_session_hash,
    )
    context = _context(
        principal,
        token,
        query=query,
        scope=scope,
        action=action.value,
        decision=decision,
        reason=reason,
        matched=len(counted),
        sealed=sealed,
    )
    return _page(request, "bulk_confirm.html", context)


def _resolution_problem(decision: str, reason: str) -> str | None:
    try:
        ResolveRequest.model_validate({"decision": decision, "reason": reason, "correction": {}})
    except ValidationError as err:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
    return None


async def _seen_versions(services: Services, form: FormData, ids: list[str]) -> dict[str, int]:
    """The version of each selected exception as the queue page showed it (`v.<id>`), else as it is
    now; unknown ids are left out (nothing to do to them)."""
    shown: dict[str, int] = {}
    for exception_id in ids:
        text = _text(form, f"v.{exception_id}", 20)
        if text.isascii() and text.isdigit() and len(text) < 10:
            shown[exception_id] = int(text)
    missing = [i for i in ids if i not in shown]
    if missing:
        async with services.db.read() as session, session.begin():
            found = await store.get_exceptions(session=session, ids=missing)
        shown.update({i: row.version for i, row in found.items()})
    return {i: shown[i] for i in ids if i in shown}


async def _bulk_confirmed(
    request: Request, services: Services, principal: Principal, token: str, form: FormData, query: QueueQuery
) -> Response:
    try:
        confirmed = confirmation.unseal(
            _text(form, "sealed", 8 * 1024 * 1024),
            key=request.state.console_session_hash,
            now=services.clock().timestamp(),
        )
        if len(confirmed.versions) > services.settings.bulk_max_rows:
            raise confirmation.BadConfirmation(f"more than LOOPGATE_BULK_MAX_ROWS={services.settings.bulk_max_rows}")
    except confirmation.BadConfirmation as err:
        message = f"Nothing was changed: {err}."
        return _page(request, "message.html", _context(principal, token, title="Bulk action", message=message), 400)
    action = BULK_ACTIONS.get(confirmed.action)
    if action is None:
        return _page(request, "message.html", _context(principal, token, title="Bulk action", message="?"), 400)
    if action is Action.RESOLVE:
        checked_body = ResolveRequest.model_validate(
            {"decision": confirmed.decision, "reason": confirmed.reason, "correction": {}}
        )
        resolution = transitions.ResolutionInput(checked_body.decision, checked_body.reason, {})
        change_for = transitions.resolve_change(principal.name, resolution)
    else:
        change_for = bulk_work.claim_change(principal.name)
    done = await bulk_work.work_set(
        db=services.db,
        versions=dict(confirmed.versions),
        action=action,
        actor=principal.name,
        change_for=change_for,
        clock=services.clock,
        bus=services.bus,
    )
    changed, failed = len(done.changed), len(done.not_changed)
    verb = "Resolved" if action is Action.RESOLVE else "Claimed"
    notice = f"{verb} {changed} exception(s)"
    if failed:
        conflicts = sum(isinstance(n.error, PreconditionFailed) for n in done.not_changed)
        notice += f"; {failed} could not be changed"
        if conflicts:
            notice += f" ({conflicts} changed by someone else since you counted)"
    return RedirectResponse(_with_notice(query.url(), notice), status_code=303)


def _with_notice(url: str, notice: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}notice={quote(notice)}"


# --- silences ----------------------------------------------------------------------------------


SILENCE_HOURS = (1, 4, 8, 24)


@router.get("/silences")
async def silences_page(request: Request) -> Response:
    found = await _session(request, need=Permission.SILENCE)
    if isinstance(found, Response):
        return found
    services, principal, token = found
    listed = await silencing.list_silences(
        db=services.db, states=[SilenceState.ACTIVE, SilenceState.PENDING], limit=200, clock=services.clock
    )
    now = services.clock()
    items = [
        (silence, held, silencing.state_of(silence, now).value, views.duration((silence.ends_at - now).total_seconds()))
        for silence, held in listed
    ]
    context = _context(
        principal,
        token,
        items=items,
        notice=_text(request.query_params, "notice", 300),  # type: ignore[arg-type]
    )
    return _page(request, "silences.html", context)


@router.post("/silences")
async def create_silence(request: Request) -> Response:
    """Silence a rule for a client for some hours (from an exception's page)."""
    checked = await _checked_post(request, Permission.SILENCE)
    if isinstance(checked, Response):
        return checked
    services, principal, token, form = checked
    hours = _text(form, "hours", 4)
    matchers = {name: _text(form, name, 255).strip() or None for name in ("rule_id", "client_id")}
    comment = _text(form, "comment").strip()
    back = _text(form, "exception_id", 255)
    try:
        if hours not in {str(h) for h in SILENCE_HOURS}:
            raise DomainError(f"Silence for {', '.join(map(str, SILENCE_HOURS))} hours.")
        body = SilenceCreate.model_validate(
            {**matchers, "ends_at": services.clock() + dt.timedelta(hours=int(hours)), "comment": comment}
        )
    except (DomainError, ValidationError) as err:
        message = err.message if isinstance(err, DomainError) else _problems(err)
        if back:
            return await _exception_page(request, services, principal, token, back, error=message, status_code=400)
        return _page(request, "message.html", _context(principal, token, title="Silence", message=message), 400)
    new = NewSilence(
        matchers={name: getattr(body, name) for name in silencing.MATCHERS},
        match_all=False,
        starts_at=services.clock(),
        ends_at=body.ends_at,
        comment=body.comment,
    )
    try:
        _, held = await silencing.create(
            db=services.db,
            new=new,
            actor=principal.name,
            max_silences=services.settings.max_silences,
            clock=services.clock,
        )
    except DomainError as err:
        if back:
            return await _exception_page(request, services, principal, token, back, error=err.message, status_code=409)
        return _page(request, "message.html", _context(principal, token, title="Silence", message=err.message), 409)
    what = ", ".join(f"{name} {value}" for name, value in matchers.items() if value)
    return RedirectResponse(
        _with_notice("/console/silences", f"Silenced {what} for {hours} h: {held} exception(s) held"), status_code=303
    )


@router.post("/silences/{silence_id}/expire")
async def expire_silence(request: Request, silence_id: str) -> Response:
    checked = await _checked_post(request, Permission.SILENCE)
    if isinstance(checked, Response):
        return checked
    services, principal, token, _ = checked
    try:
        await silencing.expire(db=services.db, silence_id=silence_id, actor=principal.name, clock=services.clock)
    except DomainError as err:
        return _page(request, "message.html", _context(principal, token, title="Silence", message=err.message), 409)
    return RedirectResponse(
        _with_notice("/console/silences", "Silence expired: what it held is back in the queue"), 303
    )


def _problems(err: ValidationError) -> str:
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
