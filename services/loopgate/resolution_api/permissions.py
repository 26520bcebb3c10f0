"""Bearer tokens and roles, as pure functions: what each role may do, and how a token is made
and hashed (only the SHA-256 hash is stored)."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

TOKEN_PREFIX = "lg_"


class Role(StrEnum):
    SERVICE = "service"  # the dispatcher: creates exceptions, nothing else
    OPERATOR = "operator"  # people on call: read and work exceptions
    ADMIN = "admin"  # everything, including tokens, reopen


class Permission(StrEnum):
    CREATE = "create exceptions"
    READ = "read exceptions"
    WORK = "work exceptions"  # claim, resolve, escalate, snooze, bulk-resolve
    REOPEN = "reopen exceptions"
    MANAGE_TOKENS = "manage tokens"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SERVICE: frozenset({Permission.CREATE}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.WORK}),
    Role.ADMIN: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def new_token() -> str:
    """A fresh secret token; shown once, stored only as its hash."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
