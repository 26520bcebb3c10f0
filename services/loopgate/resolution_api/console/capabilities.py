"""What the console offers a principal, as a pure function of its role: the pages hide what the
role cannot do (a reviewer sees no silences, no bulk actions; an analyst no claim or resolve), and
the routes refuse the same (a form built by hand gets the 403 the hidden button would have)."""

from __future__ import annotations

from dataclasses import dataclass

from loopgate.resolution_api.access.permissions import Permission, Role, allows
from loopgate.resolution_api.access.tokens import Principal

# Roles that work one exception at a time in the console, each with its own correction: a client's
# reviewers confirm or correct claims, never resolve a filter's worth of them at once.
ONE_AT_A_TIME = frozenset({Role.REVIEWER})


@dataclass(frozen=True, slots=True)
class Offered:
    """The console's actions shown to one principal."""

    work: bool  # claim, snooze, escalate, resolve (with the correction editor)
    bulk: bool  # the queue's selection boxes and its bulk action
    silences: bool  # the Silences page, the exception page's Silence form, Expire


def offered_to(principal: Principal) -> Offered:
    work = allows(principal.role, Permission.WORK)
    return Offered(
        work=work,
        bulk=work and principal.role not in ONE_AT_A_TIME,
        silences=allows(principal.role, Permission.SILENCE),
    )


def scope_text(principal: Principal) -> str:
    """The header's account of what the principal may see: 'every client' or its clients (and queues)."""
    return principal.scope.describe()
