"""What the console offers a principal, as a pure function of its role: the pages hide what the
role cannot do (a reviewer sees no silences, no bulk actions; an analyst no claim or resolve), and
the routes refuse the same (a form built by hand gets the 403 the hidden button would have)."""

from __future__ import annotations

from dataclasses import dataclass

from loopgate.resolution_api.access.permissions import Permission, allows
from loopgate.resolution_api.access.tokens import Principal


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
        bulk=allows(principal.role, Permission.BULK_WORK),  # the API's bulk routes refuse the same roles
        silences=allows(principal.role, Permission.SILENCE),
    )


def scope_text(principal: Principal) -> str:
    """The header's account of what the principal may see: 'every client' or its clients (and queues)."""
    return principal.scope.describe()
