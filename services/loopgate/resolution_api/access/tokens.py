"""Bearer tokens, all of it: how a secret is made and hashed (only its SHA-256 hash is stored),
what a token may be (name, role, scope, expiry), the queries over the tokens table and the audit
log, the principal a verified token stands for, the short cache of verified tokens, and `Tokens`,
the one service the routes, auth.py and the CLI use to create, verify, list, rotate and revoke
them. Roles, scopes and what each may do are permissions.py's."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.access.permissions import AGENCY_WIDE, SCOPED_ROLES, Role, Scope, scope_for
from loopgate.resolution_api.clock import Clock, Monotonic, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import AuditRow, TokenRow
from loopgate.resolution_api.domain_errors import Conflict, InvalidRequest, NotFound

TOKEN_PREFIX = "lg_"
CACHE_BOUND = 10_000  # entries; a bound, not an LRU: tokens are few


def new_token() -> str:
    """A fresh secret token; shown once, stored only as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name, role and scope (the exceptions it may see at all)."""

    token_id: str
    name: str  # recorded as the actor in history and as the resolver in outcomes
    role: Role
    scope: Scope = AGENCY_WIDE
    expires_at: dt.datetime | None = None


class TokenCache:
    """Tokens verified in the last `ttl` seconds (by `monotonic`), by their hash (never the
    secret): spares the database a read on every request of a busy caller such as the dispatcher."""

    def __init__(self, ttl: float, *, monotonic: Monotonic = time.monotonic) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None or entry[0] < self._monotonic():
            return None
        return entry[1]

    def put(self, token_hash: str, principal: Principal, *, seconds_left: float | None = None) -> None:
        """Remember a verified token for `ttl` seconds, or until it expires (`seconds_left`) if sooner."""
        ttl = self.ttl if seconds_left is None else min(self.ttl, seconds_left)
        if ttl > 0:
            if len(self._entries) > CACHE_BOUND:
                self._entries.clear()
            self._entries[token_hash] = (self._monotonic() + ttl, principal)

    def forget(self, token_id: str) -> None:
        self._entries = {h: e for h, e in self._entries.items() if e[1].token_id != token_id}


# --- what a token may be ----------------------------------------------------------------------

RESERVED_PREFIX = "system:"  # the API's own actors (system:sla, system:silence, ...)
NAME_MAX = 64
CLIENTS_MAX = 100
CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LAST_USED_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often per token
ROTATION_GRACE_MAX = dt.timedelta(days=30)


def check_token_request(*, name: str, role: Role, clients: Collection[str] | None) -> str | None:
    """What is wrong with a token of this name, role and scope, or None."""
    if not name or name != name.strip():
        return "name: must be non-empty, without leading or trailing spaces"
    if len(name) > NAME_MAX:
        return f"name: at most {NAME_MAX} characters"
    if any(not ch.isprintable() for ch in name):
        return "name: control characters are not allowed"
    if name.lower().startswith(RESERVED_PREFIX):
        return f"name: the prefix {RESERVED_PREFIX!r} is reserved for Loopgate's own actors"
    if clients is not None:
        if not clients:
            return "clients: name at least one client, or leave it out for an agency-wide token"
        if len(clients) > CLIENTS_MAX:
            return f"clients: at most {CLIENTS_MAX}"
        bad = next((c for c in clients if not CLIENT_ID.fullmatch(c)), None)
        if bad is not None:
            return f"clients: {bad!r} is not a client id (letters, digits, '.', '_', ':', '-'; at most 128)"
    if role in SCOPED_ROLES and clients is None:
        return f"clients: a {role.value} token must name the clients it serves"
    if role == Role.SERVICE and clients is not None:
        return "clients: a service token creates exceptions for every client and takes no scope"
    return None


def principal_of(row: TokenRow) -> Principal:
    role = Role(row.role)
    return Principal(
        token_id=row.id, name=row.name, role=role, scope=scope_for(role, row.clients), expires_at=row.expires_at
    )


# --- queries (in the caller's transaction) ----------------------------------------------------


async def create_token(
    *,
    session: AsyncSession,
    name: str,
    role: Role,
    now: dt.datetime,
    clients: Collection[str] | None = None,
    expires_at: dt.datetime | None = None,
) -> tuple[TokenRow, str]:
    """A new token row and its secret (the only time the secret exists outside the caller)."""
    secret = new_token()
    row = TokenRow(
        id=uuid.uuid4().hex,
        name=name,
        role=role.value,
        token_hash=hash_token(secret),
        created_at=now,
        clients=None if clients is None else sorted(set(clients)),
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def find_active_token(*, session: AsyncSession, secret: str, now: dt.datetime) -> TokenRow | None:
    """The unrevoked, unexpired token whose secret this is (or whose previous secret, within its grace)."""
    token_hash = hash_token(secret)
    stmt = sa.select(TokenRow).where(
        sa.or_(
            TokenRow.token_hash == token_hash,
            sa.and_(TokenRow.previous_hash == token_hash, TokenRow.previous_valid_until > now),
        ),
        TokenRow.revoked_at.is_(None),
        sa.or_(TokenRow.expires_at.is_(None), TokenRow.expires_at > now),
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def active_name_taken(*, session: AsyncSession, name: str) -> bool:
    stmt = sa.select(TokenRow.id).where(TokenRow.name == name, TokenRow.revoked_at.is_(None))
    return (await session.execute(stmt)).first() is not None


async def list_tokens(*, session: AsyncSession) -> list[TokenRow]:
    return list((await session.execute(sa.select(TokenRow).order_by(TokenRow.created_at))).scalars())


async def revoke_token(*, session: AsyncSession, token_id: str, now: dt.datetime) -> TokenRow | None:
    """Revoke a token (revoking twice keeps the first time); None when there is no such token."""
    row = await session.get(TokenRow, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        await session.flush()
    return row


async def add_audit(
    *, session: AsyncSession, actor: str, action: str, target: str, detail: dict[str, Any], now: dt.datetime
) -> None:
    session.add(AuditRow(at=now, actor=actor, action=action, target=target, detail=detail))
    await session.flush()


async def audit_page(*, session: AsyncSession, limit: int, before: int | None) -> list[AuditRow]:
    """The audit log, newest first, `limit` rows older than the row `before` (its id)."""
    stmt = sa.select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(AuditRow.id < before)
    return list((await session.execute(stmt)).scalars())


# --- the service ------------------------------------------------------------------------------


class Tokens:
    """Create, verify (through the cache), list, rotate and revoke tokens, each in its own
    transaction; every change is written to the audit log in the same transaction."""

    def __init__(self, *, db: Database, cache: TokenCache, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock
        self.cache = cache

    async def create(
        self,
        *,
        name: str,
        role: Role,
        actor: str = "cli",
        clients: Collection[str] | None = None,
        expires_at: dt.datetime | None = None,
    ) -> tuple[TokenRow, str]:
        """A new token; InvalidRequest for a name, role or scope it cannot have, Conflict for a name
        an active token has."""
        problem = check_token_request(name=name, role=role, clients=clients)
        now = self._clock()
        if problem is None and expires_at is not None and expires_at <= now:
            problem = "expires_at: must lie in the future"
        if problem:
            raise InvalidRequest(problem)
        async with self._db.write() as session, session.begin():
            if await active_name_taken(session=session, name=name):
                raise Conflict(f"an active token is named {name!r} already: pick another name, or revoke that one")
            row, secret = await create_token(
                session=session, name=name, role=role, now=now, clients=clients, expires_at=expires_at
            )
            detail: dict[str, Any] = {"name": name, "role": role.value, "clients": row.clients}
            if expires_at is not None:
                detail["expires_at"] = expires_at.isoformat()
            await add_audit(session=session, actor=actor, action="token.created", target=row.id, detail=detail, now=now)
        return row, secret

    async def verify(self, secret: str) -> Principal | None:
        """The principal of an active token; None when it is unknown, revoked or expired."""
        token_hash = hash_token(secret)
        cached = self.cache.get(token_hash)
        if cached is not None:
            return cached
        now = self._clock()
        async with self._db.read() as session, session.begin():
            row = await find_active_token(session=session, secret=secret, now=now)
        if row is None:
            return None
        if row.last_used_at is None or row.last_used_at < now - LAST_USED_EVERY:
            async with self._db.write() as session, session.begin():
                await session.execute(sa.update(TokenRow).where(TokenRow.id == row.id).values(last_used_at=now))
        principal = principal_of(row)
        ends = [t for t in (row.expires_at, row.previous_valid_until if row.token_hash != token_hash else None) if t]
        self.cache.put(
            token_hash, principal, seconds_left=min((t - now).total_seconds() for t in ends) if ends else None
        )
        return principal

    async def list(self) -> list[TokenRow]:
        async with self._db.read() as session, session.begin():
            return await list_tokens(session=session)

    async def rotate(self, token_id: str, *, grace: dt.timedelta, actor: str = "cli") -> tuple[TokenRow, str]:
        """A new secret for an active token; the old one stays valid for `grace` (zero: not at all)."""
        if not dt.timedelta(0) <= grace <= ROTATION_GRACE_MAX:
            raise InvalidRequest(f"grace: from 0 to {ROTATION_GRACE_MAX.days} days")
        now = self._clock()
        secret = new_token()
        async with self._db.write() as session, session.begin():
            row = await session.get(TokenRow, token_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no token with id {token_id!r}")
            if row.revoked_at is not None:
                raise Conflict(f"token {token_id!r} is revoked: create a new one")
            old_hash = row.token_hash
            row.previous_hash = old_hash if grace > dt.timedelta(0) else None
            row.previous_valid_until = now + grace if grace > dt.timedelta(0) else None
            row.token_hash = hash_token(secret)
            await add_audit(
                session=session,
                actor=actor,
                action="token.rotated",
                target=row.id,
                detail={"name": row.name, "grace_seconds": int(grace.total_seconds())},
                now=now,
            )
        self.cache.forget(token_id)
        return row, secret

    async def revoke(self, token_id: str, *, actor: str = "cli") -> TokenRow:
        """Revoke a token and forget it at once; NotFound when there is no such token."""
        now = self._clock()
        async with self._db.write() as session, session.begin():
            row = await revoke_token(session=session, token_id=token_id, now=now)
            if row is None:
                raise NotFound(f"no token with id {token_id!r}")
            await add_audit(
                session=session, actor=actor, action="token.revoked", target=row.id, detail={"name": row.name}, now=now
            )
        self.cache.forget(token_id)
        return row

    async def audit(self, *, limit: int, before: int | None = None) -> Sequence[AuditRow]:
        async with self._db.read() as session, session.begin():
            return await audit_page(session=session, limit=limit, before=before)
