"""The console's sessions, kept on the server: the cookie holds a random session id (HTTP-only,
same-site, Secure unless LOOPGATE_CONSOLE_SECURE_COOKIE is false); the database keeps only its
SHA-256 hash, with the token it was opened with (or, after single sign-on, the person's name, role
and clients), when it was opened and last seen, and its own CSRF value. So any API replica serves
any page, and a session ends everywhere at once: on sign-out, when idle or too old
(LOOPGATE_CONSOLE_SESSION_IDLE_SECONDS, ..._MAX_SECONDS), and, for a token's session, when its
token is revoked or expires. The sign-in form, before there is a session, carries a random value
that must equal a cookie of its own (double submit)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from fastapi import Request, Response

from loopgate.resolution_api.access.permissions import Role, scope_for
from loopgate.resolution_api.access.tokens import Principal, hash_token, principal_of
from loopgate.resolution_api.db.models import ConsoleSessionRow, TokenRow
from loopgate.resolution_api.http.deps import Services

SESSION_COOKIE = "loopgate_console"
SIGN_IN_CSRF_COOKIE = "loopgate_console_csrf"
COOKIE_PATH = "/console"
SESSION_ID_MAX = 100  # characters of a cookie value worth looking up
LAST_SEEN_EVERY = dt.timedelta(seconds=30)  # last_seen_at is written at most this often per session


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in browser: who, and the CSRF value its forms must carry."""

    principal: Principal
    csrf: str
    session_hash: str


def same(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


async def signed_in(request: Request, services: Services) -> ConsoleSession | None:
    """The session of this request's cookie; None when there is none, or it ended, idled out, grew
    too old, or its token was revoked or expired."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > SESSION_ID_MAX:
        return None
    settings, now = services.settings, services.clock()
    session_hash = _hash(session_id)
    stmt = (
        sa.select(ConsoleSessionRow, TokenRow)
        .outerjoin(TokenRow, TokenRow.id == ConsoleSessionRow.token_id)
        .where(
            ConsoleSessionRow.id == session_hash,
            ConsoleSessionRow.ended_at.is_(None),
            ConsoleSessionRow.created_at > now - dt.timedelta(seconds=settings.console_session_max_seconds),
            ConsoleSessionRow.last_seen_at > now - dt.timedelta(seconds=settings.console_session_idle_seconds),
            sa.or_(
                ConsoleSessionRow.token_id.is_(None),  # single sign-on: the provider vouched at sign-in
                sa.and_(
                    TokenRow.revoked_at.is_(None), sa.or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > now)
                ),
            ),
        )
    )
    async with services.db.read() as db, db.begin():
        found = (await db.execute(stmt)).first()
    if found is None:
        return None
    row, token = found
    if row.last_seen_at < now - LAST_SEEN_EVERY:
        async with services.db.write() as db, db.begin():
            await db.execute(
                sa.update(ConsoleSessionRow).where(ConsoleSessionRow.id == session_hash).values(last_seen_at=now)
            )
    principal = principal_of(token) if row.token_id is not None else sso_principal(row)
    if principal is None:
        return None
    return ConsoleSession(principal=principal, csrf=row.csrf, session_hash=session_hash)


def sso_principal(row: ConsoleSessionRow) -> Principal | None:
    """Who a session opened by single sign-on stands for; None if the row is incomplete."""
    if row.name is None or row.role is None:
        return None
    role = Role(row.role)
    return Principal(token_id=f"sso:{row.id[:12]}", name=row.name, role=role, scope=scope_for(role, row.clients))


async def _open(services: Services, response: Response, values: dict[str, object], *, secure: bool) -> None:
    """Store a new session with `values` (who it is) and set its cookie."""
    session_id = secrets.token_urlsafe(32)
    now = services.clock()
    async with services.db.write() as db, db.begin():
        db.add(
            ConsoleSessionRow(
                id=_hash(session_id), csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now, **values
            )
        )
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(services.settings.console_session_max_seconds),
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path=COOKIE_PATH)


async def start_sso_session(
    services: Services, response: Response, *, name: str, role: Role, clients: list[str] | None, secure: bool
) -> None:
    """Open a session for a person the identity provider vouched for (no token behind it)."""
    await _open(services, response, {"name": name, "role": role.value, "clients": clients}, secure=secure)


async def start_session(services: Services, response: Response, token: str, *, secure: bool) -> None:
    """Open a session for a verified token and set its cookie (the token itself never is one)."""
    async with services.db.read() as db, db.begin():
        token_id = (
            await db.execute(
                sa.select(TokenRow.id).where(
                    sa.or_(TokenRow.token_hash == hash_token(token), TokenRow.previous_hash == hash_token(token))
                )
            )
        ).scalar_one()
    await _open(services, response, {"token_id": token_id}, secure=secure)


async def end_session(services: Services, response: Response, session: ConsoleSession, *, secure: bool) -> None:
    async with services.db.write() as db, db.begin():
        await db.execute(
            sa.update(ConsoleSessionRow)
            .where(ConsoleSessionRow.id == session.session_hash, ConsoleSessionRow.ended_at.is_(None))
            .values(ended_at=services.clock())
        )
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
