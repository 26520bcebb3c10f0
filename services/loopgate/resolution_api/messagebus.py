"""The in-process message bus: commands publish domain events (events.py) inside their unit of
work; the handlers subscribed to an event's class (handlers.py registers them all, in one place)
run in two phases.

- In the transaction (`subscribe`): `await handler(session, events)` with the events of that
  class the unit of work published, in order, before it commits: the history rows, the outbox
  row, the notification events. A handler that raises rolls the whole unit of work back (the
  change, its history and everything other handlers wrote) and the error reaches the caller:
  a change is never committed without what must follow from it.
- After the commit (`subscribe_after_commit`): `handler(events)`: metrics, waking the relays.
  The change is already committed, so a handler that raises is logged and counted
  (loopgate_event_handler_errors_total{handler}), the other handlers still run and the caller
  gets its result.

Handlers take a list so a bulk or sweep chunk writes its rows in one statement per handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.events import Event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
InTransaction = Callable[[AsyncSession, Sequence[Any]], Awaitable[None]]
AfterCommit = Callable[[Sequence[Any]], None]


@dataclass
class UnitOfWork:
    """One write transaction: `session`, and the events published in it (`publish`)."""

    session: AsyncSession
    events: list[Event] = field(default_factory=list)

    def publish(self, *events: Event) -> None:
        self.events.extend(events)


def _handler_name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


class MessageBus:
    def __init__(self) -> None:
        self._in_transaction: list[tuple[type[Event], InTransaction]] = []
        self._after_commit: list[tuple[type[Event], AfterCommit]] = []

    def subscribe(self, event: type[E], handler: Callable[[AsyncSession, Sequence[E]], Awaitable[None]]) -> None:
        """Run `handler` in the transaction for the events of class `event` (or a subclass)."""
        self._in_transaction.append((event, handler))

    def subscribe_after_commit(self, event: type[E], handler: Callable[[Sequence[E]], None]) -> None:
        """Run `handler` once the transaction committed, for the events of class `event` (or a subclass)."""
        self._after_commit.append((event, handler))

    @asynccontextmanager
    async def unit_of_work(self, db: Database) -> AsyncIterator[UnitOfWork]:
        """A write transaction whose published events are handled before it commits (and after)."""
        async with db.write() as session, session.begin():
            uow = UnitOfWork(session)
            yield uow
            await self.handle(session, uow.events)
        self.committed(uow.events)

    async def handle(self, session: AsyncSession, events: Sequence[Event]) -> None:
        """The in-transaction phase, subscription by subscription; an error propagates (rolls back)."""
        if not events:
            return
        for event_class, handler in self._in_transaction:
            chosen = [e for e in events if isinstance(e, event_class)]
            if chosen:
                await handler(session, chosen)

    def committed(self, events: Sequence[Event]) -> None:
        """The after-commit phase: every handler runs; one that raises is logged and counted."""
        if not events:
            return
        for event_class, handler in self._after_commit:
            chosen = [e for e in events if isinstance(e, event_class)]
            if not chosen:
                continue
            try:
                handler(chosen)
            except Exception:
                name = _handler_name(handler)
                log.exception("event handler %s failed after commit (the change stays committed)", name)
                metrics.EVENT_HANDLER_ERRORS.labels(name).inc()


@cache
def default_bus() -> MessageBus:
    """The bus of commands called without one (tools, tests): every handler, no relay to wake."""
    # Imported here, not at the top: handlers.py is the composition root and imports commands
    # (review/flow.py uses creation), so the commands may not import it back.
    from loopgate.resolution_api.handlers import bootstrap

    return bootstrap()
