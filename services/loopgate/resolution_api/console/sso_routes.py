"""/console/sso: single sign-on's two routes, thin: sso.py does the flow, session.py the session.

`start` sends the browser to the identity provider with a state cookie; `callback` brings it back,
opens a console session for the person the provider vouched for, or shows why not (a 4xx page,
or 503 while the provider does not answer)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from loopgate.resolution_api.console import session
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


@router.get("/start")
async def start(request: Request) -> Response:
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
    response = RedirectResponse("/console/queue", status_code=303)
    await session.start_sso_session(
        services, response, name=person.name, role=person.grant.role, clients=person.grant.clients, secure=secure
    )
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, secure=secure, httponly=True, samesite="lax")
    return response
