"""Bearer tokens, all of it: how a secret is made and hashed (only its SHA-256 hash is stored),
the queries over the tokens table, the principal a verified token stands for, the short cache of
verified tokens, and `Tokens`, the one service the routes, auth.py and the CLI use to create,
verify, list and revoke them. Roles and what each may do are permissions.py's."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.resolution_api.clock import Clock, Monotonic, utcnow
from loopgate.resolution_api.db import Database
from loopgate.resolution_api.domain_errors import NotFound
from loopgate.resolution_api.models import TokenRow
from loopgate.resolution_api.permissions import Role

TOKEN_PREFIX = "lg_"
CACHE_BOUND = 10_000  # entries; a bound, not an LRU: tokens are few


def new_token() -> str:
    """A fresh secret token; shown once, stored only as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, name and role."""

    token_id: str
    name: str  # recorded as the actor in history and as the resolver in outcomes
    role: Role


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

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl > 0:
            if len(self._entries) > CACHE_BOUND:
                self._entries.clear()
            self._entries[token_hash] = (self._monotonic() + self.ttl, principal)

    def forget(self, token_id: str) -> None:
        self._entries = {h: e for h, e in self._entries.items() if e[1].token_id != token_id}


# --- queries (in the caller's transaction) ----------------------------------------------------


async def create_token(*, session: AsyncSession, name: str, role: Role, now: dt.datetime) -> tuple[TokenRow, str]:
    """A new token row and its secret (the only time the secret exists outside the caller)."""
    secret = new_token()
    row = TokenRow(id=uuid.uuid4().hex, name=name, role=role.value, token_hash=hash_token(secret), created_at=now)
    session.add(row)
    await session.flush()
    return row, secret


async def find_active_token(*, session: AsyncSession, secret: str) -> TokenRow | None:
    stmt = sa.select(TokenRow).where(TokenRow.token_hash == hash_token(secret), TokenRow.revoked_at.is_(None))
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_tokens(*, session: AsyncSession) -> list[TokenRow]:
    return list((await session.execute(sa.select(TokenRow).order_by(TokenRow.created_at))).scalars())


async def revoke_token(*, session: AsyncSession, token_id: str, now: dt.datetime) -> TokenRow | None:
    """Revoke a token (revoking twice keeps the first time); None when there is no such token."""
    row = await session.get(TokenRow, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        await session.flush()
    return row


# --- the service ------------------------------------------------------------------------------


class Tokens:
    """Create, verify (through the cache), list and revoke tokens, each in its own transaction."""

    def __init__(self, *, db: Database, cache: TokenCache, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock
        self.cache = cache

    async def create(self, *, name: str, role: Role) -> tuple[TokenRow, str]:
        async with self._db.write() as session, session.begin():
            return await create_token(session=session, name=name, role=role, now=self._clock())

    async def verify(self, secret: str) -> Principal | None:
        """The principal of an active token; None when it is unknown or revoked."""
        token_hash = hash_token(secret)
        cached = self.cache.get(token_hash)
        if cached is not None:
            return cached
        async with self._db.read() as session, session.begin():
            row = await find_active_token(session=session, secret=secret)
        if row is None:
            return None
        principal = Principal(token_id=row.id, name=row.name, role=Role(row.role))
        self.cache.put(token_hash, principal)
        return principal

    async def list(self) -> list[TokenRow]:
        async with self._db.read() as session, session.begin():
            return await list_tokens(session=session)

    async def revoke(self, token_id: str) -> TokenRow:
        """Revoke a token and forget it at once; NotFound when there is no such token."""
        async with self._db.write() as session, session.begin():
            row = await revoke_token(session=session, token_id=token_id, now=self._clock())
        if row is None:
            raise NotFound(f"no token with id {token_id!r}")
        self.cache.forget(token_id)
        return row
