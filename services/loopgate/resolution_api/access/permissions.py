"""Roles and scopes, as pure functions: what each role may do, and which exceptions a principal may
see at all (tokens.py makes and checks the tokens; the query layer applies the scope)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    SERVICE = "service"  # the dispatcher: creates exceptions, nothing else
    OPERATOR = "operator"  # people on call: read and work exceptions
    ADMIN = "admin"  # everything, including tokens, reopen
    REVIEWER = "reviewer"  # a client's own fact-checkers: read and work their clients' reviewer queues only
    ANALYST = "analyst"  # model and rule owners: read, verdict statistics, training export; no changes


class Permission(StrEnum):
    CREATE = "create exceptions"
    READ = "read exceptions"
    WORK = "work exceptions"  # claim, unclaim, resolve, escalate, snooze: one exception at a time
    BULK_WORK = "work exceptions in bulk"  # bulk-resolve by ids, bulk actions by filter
    REOPEN = "reopen exceptions"
    MANAGE_TOKENS = "manage tokens"
    SILENCE = "manage silences"  # create and expire silences
    SEE_UNDELIVERED = "see what could not be delivered"  # notifications and outcomes set aside


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.SERVICE: frozenset({Permission.CREATE}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.WORK, Permission.BULK_WORK, Permission.SILENCE}),
    Role.ADMIN: frozenset(Permission),
    # a client's reviewers confirm or correct claims one by one, never a filter's worth at once
    Role.REVIEWER: frozenset({Permission.READ, Permission.WORK}),
    Role.ANALYST: frozenset({Permission.READ}),
}

# What only an agency-wide token may do, whatever its role: a token scoped to some clients cannot
# mint tokens for others.
AGENCY_WIDE_ONLY = frozenset({Permission.MANAGE_TOKENS})

# Roles whose tokens must name the clients they serve (a reviewer is always one client's or a few).
SCOPED_ROLES = frozenset({Role.REVIEWER})


def allows(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def reviewer_queue(client_id: str) -> str:
    """The queue a client's reviewers work (routes.toml sends claim verification there)."""
    return f"reviewers-{client_id}"


@dataclass(frozen=True, slots=True)
class Scope:
    """The exceptions a principal may see: `clients` None is agency-wide; `queues` None is every
    queue of those clients. Out of scope is the same as not existing (404)."""

    clients: frozenset[str] | None = None
    queues: frozenset[str] | None = None

    @property
    def agency_wide(self) -> bool:
        return self.clients is None and self.queues is None

    def covers(self, *, client_id: str, queue: str) -> bool:
        return (self.clients is None or client_id in self.clients) and (self.queues is None or queue in self.queues)

    def describe(self) -> str:
        if self.agency_wide:
            return "every client"
        clients = ", ".join(sorted(self.clients or ())) or "none"
        queues = "" if self.queues is None else f" (queues {', '.join(sorted(self.queues))})"
        return f"clients {clients}{queues}"


AGENCY_WIDE = Scope()
NOTHING = Scope(clients=frozenset(), queues=frozenset())  # a reviewer token that names no client


def scope_for(role: Role, clients: Collection[str] | None) -> Scope:
    """A token's scope from its role and the clients it names: a reviewer sees only its clients'
    reviewer queues (none named: nothing); any other role named clients sees every queue of those clients."""
    if clients is None:
        return NOTHING if role in SCOPED_ROLES else AGENCY_WIDE
    named = frozenset(clients)
    if role in SCOPED_ROLES:
        return Scope(clients=named, queues=frozenset(reviewer_queue(c) for c in named))
    return Scope(clients=named)
