"""/console/sso: single sign-on's two routes, thin: sso.py does the flow, session.py the session.

`start` sends the browser to the identity provider with a state cookie; `callback` brings it back,
opens a console session for the person the provider vouched for, or shows why not (a 4xx page,
or 503 while the provider does not answer)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from loopgate.resolution_api.console import return_to, session
from loopgate.resolution_api.console.routes import _page
from loopgate.resolution_api.console.sso import MAX_PARAM, STATE_COOKIE, STATE_COOKIE_PATH, SignInRefused
from loopgate.resolution_api.http.deps import get_services

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console/sso", include_in_schema=False)


def install(app: FastAPI) -> None:
    app.include_router(router)


def _refusal(request: Request, refused: SignInRefused, *, secure: bool) -> Response:
    log.info("single sign-on refused: %s", refused.reason)
    page = _page(request, "sso_refused.html", {"user": None, "message": refused.message}, refused.status)
    page.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, secure=secure, httponly=True, samesite="lax")
    return page


NEXT_COOKIE = "loopgate_sso_next"  # the console page a sign-in returns to (return_to.safe_next)


@router.get("/start")
async def start(request: Request) -> Response:
    """To the provider; `next` (a console page, checked by return_to.safe_next) is where the
    callback returns, kept in a cookie beside the state (anything else: the queue)."""
    services = await get_services(request)
    secure = services.settings.console_secure_cookie
    if services.sso is None:
        return _refusal(
            request, SignInRefused(404, "Single sign-on is not set up here.", "not_configured"), secure=secure
        )
    try:
        url, state = await services.sso.begin()
    except SignInRefused as refused:
        return _refusal(request, refused, secure=secure)
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(services.sso.config.sign_in_seconds),
        path=STATE_COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on other sites' requests
    )
    next_page = return_to.safe_next(request.query_params.get("next"))
    if next_page is not None:
        response.set_cookie(
            NEXT_COOKIE,
            next_page,
            max_age=int(services.sso.config.sign_in_seconds),
            path=STATE_COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite="lax",
        )
    return response


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    return value if len(value) <= MAX_PARAM else ""


@router.get("/callback")
async def callback(request: Request) -> Response:
    services = await get_services(request)
    secure = services.settings.console_secure_cookie
    if services.sso is None:
        return _refusal(
            request, SignInRefused(404, "Single sign-on is not set up here.", "not_configured"), secure=secure
        )
    try:
        person = await services.sso.finish(
            state=_param(request, "state"),
            cookie_state=request.cookies.get(STATE_COOKIE),
            code=_param(request, "code"),
            error=_param(request, "error"),
        )
    except SignInRefused as refused:
        return _refusal(request, refused, secure=secure)
    log.info("single sign-on: %s signed in as %s", person.name, person.grant.role.value)
    next_page = return_to.safe_next(request.cookies.get(NEXT_COOKIE)) or return_to.DEFAULT_PAGE
    response = RedirectResponse(next_page, status_code=303)
    await session.start_sso_session(
        services, response, name=person.name, role=person.grant.role, clients=person.grant.clients, secure=secure
    )
    for cookie in (STATE_COOKIE, NEXT_COOKIE):
        response.delete_cookie(cookie, path=STATE_COOKIE_PATH, secure=secure, httponly=True, samesite="lax")
    return response
