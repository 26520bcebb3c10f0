"""What can go wrong in the resolution API's own work, said without HTTP: the service layer
(creation, transitions, sweeps, tokens) raises these; errors.py alone maps each to its status
code and body, and the sweeper catches them without knowing anything about HTTP."""

from __future__ import annotations

from loopgate.common.errors import LoopgateError


class DomainError(LoopgateError):
    """Every error the service layer raises on purpose (a LoopgateError). `str(err)` is the one message
    naming the problem, as a client sees it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    """What was asked cannot be read (an invalid cursor, a time range the wrong way round)."""


class NotFound(DomainError):
    """No such exception or token."""


class Conflict(DomainError):
    """The exception's state does not allow it, or it changed meanwhile."""


class NotAllowed(DomainError):
    """The caller may not do this to this exception (unclaiming someone else's claim)."""


class PreconditionFailed(DomainError):
    """The caller's expected version (If-Match) is not the exception's current one."""


class Unavailable(DomainError):
    """Not now: the intake is not running, or writes kept colliding. Retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
