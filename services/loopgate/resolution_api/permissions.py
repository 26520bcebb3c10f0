"""Roles, as pure functions: what each role may do (tokens.py makes and checks the tokens)."""

from __future__ import annotations

from enum import StrEnum


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
    SILENCE = "manage silences"  # create and expire silences


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SERVICE: frozenset({Permission.CREATE}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.WORK, Permission.SILENCE}),
    Role.ADMIN: frozenset(Permission),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]
