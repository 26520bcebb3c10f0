"""Routing: which queue (team) an exception goes to, decided once, when it is created.

The routes file (TOML: the packaged routes.toml unless LOOPGATE_ROUTES_FILE points elsewhere) is
an ordered list of routes, each with matchers on rule, severity (exact, or a minimum), client,
source and kind, and a queue; the first route whose matchers all hold wins, else the default
queue. A queue may be templated from the client (`queue = "reviewers-{client_id}"`): one queue
per client, as claim verification needs. Loaded strictly when the API starts: an unknown key or
a hostile value refuses to start, naming the key. `route` is the pure function creation.py calls.

A matching templated route that cannot take a record (it lacks the field the template names, or
the value makes no valid queue name: a client_id with a space, say) is passed over for the next
matching route or the default queue, never silently: `route` says so in its note, which the
exception's history keeps, the log shows and `loopgate_api_routing_fallbacks_total` counts.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml
from loopgate_schemas.exceptions import ExceptionRecord, Kind, Severity
from loopgate_schemas.outcomes import DEFAULT_QUEUE

DEFAULT_ROUTES_PATH = Path(__file__).with_name("routes.toml")
MAX_QUEUE_LENGTH = 255  # the exceptions.queue column
TEMPLATE_FIELDS = ("client_id", "rule_id", "source")  # what a queue template may name
# A queue name (after templating): letters, digits and . _ : / - ; no spaces, nothing a URL or a label chokes on.
_QUEUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")

Matcher = Annotated[str, StringConstraints(min_length=1, max_length=255)]


def _template_fields(template: str) -> list[str]:
    """The fields a queue template names; ValueError for a malformed or unknown one."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"malformed template {template!r}: {err}") from None
    names = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conversion:
            raise ValueError(f"template {template!r} may only name {{{'}, {'.join(TEMPLATE_FIELDS)}}} (got {{{name}}})")
        names.append(name)
    return names


def _check_queue(template: str) -> str:
    _template_fields(template)
    sample = template.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
    if not _QUEUE.fullmatch(sample) or len(sample) > MAX_QUEUE_LENGTH:
        raise ValueError(
            f"queue {template!r}: a queue name starts with a letter or digit, then letters, digits or . _ : / - "
            f"(at most {MAX_QUEUE_LENGTH} characters)"
        )
    return template


QueueName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUEUE_LENGTH)]


class Route(Strict):
    """One route: every matcher given must hold (a list: any of its values); none given matches all."""

    name: str = Field(default="", max_length=255, description="For people reading the file and the logs")
    rule: list[Matcher] | None = None
    severity: list[Severity] | None = None
    min_severity: Severity | None = None
    client: list[Matcher] | None = None
    source: list[Matcher] | None = None
    kind: list[Kind] | None = None
    queue: QueueName

    @model_validator(mode="after")
    def _valid(self) -> Self:
        _check_queue(self.queue)
        for name in ("rule", "severity", "client", "source", "kind"):
            if getattr(self, name) == []:
                raise ValueError(f"{name}: an empty list matches nothing; leave it out to match everything")
        if self.severity is not None and self.min_severity is not None:
            raise ValueError("give severity (exact) or min_severity, not both")
        return self

    def matches(self, record: ExceptionRecord) -> bool:
        severity = record.severity
        return (
            (self.rule is None or record.rule_id in self.rule)
            and (self.severity is None or severity in self.severity)
            and (self.min_severity is None or severity.rank >= self.min_severity.rank)
            and (self.client is None or record.client_id in self.client)
            and (self.source is None or record.source in self.source)
            and (self.kind is None or record.kind in self.kind)
        )

    def queue_for(self, record: ExceptionRecord) -> str | Passed:
        """The queue this route sends the record to, or why it cannot (the next route is tried): its
        template names a field the record lacks, or the filled-in name is not a valid queue name."""
        if "{" not in self.queue:
            return self.queue
        values = {"client_id": record.client_id, "rule_id": record.rule_id, "source": record.source}
        for name in _template_fields(self.queue):
            if not values[name]:
                return Passed(Fallback.MISSING_FIELD, f"the record has no {name} for queue {self.queue!r}")
        queue = self.queue.format(**values)
        if _QUEUE.fullmatch(queue) and len(queue) <= MAX_QUEUE_LENGTH:
            return queue
        fields = ", ".join(_template_fields(self.queue))
        return Passed(
            Fallback.INVALID_QUEUE,
            f"{queue[:300]!r} (from {fields}) is not a valid queue name: a letter or digit, then letters, digits or "
            f". _ : / - (at most {MAX_QUEUE_LENGTH} characters)",
        )


class Fallback(StrEnum):
    """Why a matching templated route passed a record on (the bounded label of the fallback metric)."""

    MISSING_FIELD = "missing_field"
    INVALID_QUEUE = "invalid_queue"


@dataclass(frozen=True, slots=True)
class Passed:
    """A matching route that could not take the record, and why."""

    reason: Fallback
    why: str


@dataclass(frozen=True, slots=True)
class Routed:
    """Where a new exception goes; `note` says which matching route passed it on and why (None: none did)."""

    queue: str
    note: str | None = None
    fallback: Fallback | None = None


class RoutingTable(Strict):
    """The routes file: `default_queue`, then `[[routes]]` in order."""

    default_queue: QueueName = DEFAULT_QUEUE
    routes: list[Route] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if "{" in self.default_queue or "}" in self.default_queue:
            raise ValueError("default_queue: cannot be a template")
        _check_queue(self.default_queue)
        return self


def route(table: RoutingTable, record: ExceptionRecord) -> Routed:
    """Where an exception opened by `record` goes: the first matching route that can take it, else
    the default queue; with a note naming the first matching route that could not, and why."""
    passed: tuple[int, Route, Passed] | None = None
    for position, candidate in enumerate(table.routes, start=1):
        if not candidate.matches(record):
            continue
        queue = candidate.queue_for(record)
        if isinstance(queue, str):
            return _routed(queue, passed)
        passed = passed or (position, candidate, queue)
    return _routed(table.default_queue, passed)


def _routed(queue: str, passed: tuple[int, Route, Passed] | None) -> Routed:
    if passed is None:
        return Routed(queue)
    position, by, why = passed
    name = f"route {position} ({by.name!r})" if by.name else f"route {position}"
    return Routed(queue, f"{name} passed it on: {why.why}; routed to {queue!r} instead", why.reason)


def route_of(table: RoutingTable, record: ExceptionRecord) -> str:
    """The queue of an exception opened by `record` (see `route`)."""
    return route(table, record).queue


class RoutesError(LoopgateError):
    """The routes file cannot be used; the message names the key."""


def load_routes(path: Path | None = None) -> RoutingTable:
    return load_toml(path or DEFAULT_ROUTES_PATH, RoutingTable, error=RoutesError)
