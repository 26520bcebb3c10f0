"""The console's sign-in: the operator's API token in an HTTP-only, same-site cookie (Secure unless
LOOPGATE_CONSOLE_SECURE_COOKIE is false), and CSRF tokens for every form.

Stateless, so any API replica serves any page: a signed-in form carries an HMAC of the session's
token (only a page rendered for that cookie can know it); the sign-in form, before there is a
session, carries a random value that must equal a cookie of its own (double submit)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request, Response

from loopgate.resolution_api.deps import Services
from loopgate.resolution_api.tokens import Principal

SESSION_COOKIE = "loopgate_console"
SIGN_IN_CSRF_COOKIE = "loopgate_console_csrf"
SESSION_SECONDS = 12 * 3600  # one on-call shift
COOKIE_PATH = "/console"


def csrf_for(token: str) -> str:
    """The CSRF value of a signed-in session's forms."""
    return hmac.new(token.encode("utf-8"), b"loopgate-console-csrf", hashlib.sha256).hexdigest()


def same(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


async def signed_in(request: Request, services: Services) -> tuple[Principal, str] | None:
    """The principal of the session's token and the token itself; None when there is no session
    or its token is unknown or revoked."""
    token = session_token(request)
    if token is None or len(token) > 200:
        return None
    principal = await services.tokens.verify(token)
    return None if principal is None else (principal, token)


def start_session(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path=COOKIE_PATH)


def end_session(response: Response, *, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax")


def sign_in_csrf(request: Request, response: Response, *, secure: bool) -> str:
    """The sign-in form's CSRF value: the browser's existing one, or a new one set as a cookie."""
    value = request.cookies.get(SIGN_IN_CSRF_COOKIE)
    if not value or len(value) > 100:
        value = secrets.token_urlsafe(24)
    response.set_cookie(
        SIGN_IN_CSRF_COOKIE, value, max_age=3600, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax"
    )
    return value
