"""The queue page's query: the filters, order and page an operator chose, read from the URL (so a
refresh, a bookmark or a shared link keeps the operator's place), and the counts beside them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.exceptions import store
from loopgate.resolution_api.exceptions.cursor import Sort
from loopgate.resolution_api.exceptions.lifecycle import UNRESOLVED, Status
from loopgate.resolution_api.schemas import unstorable_text
from loopgate_schemas.exceptions import Severity

PAGE_SIZE = 25
SEVERITIES = [s.value for s in reversed(Severity)]  # most severe first
STATUSES = [s.value for s in Status]
UNRESOLVED_STATUSES = [s.value for s in Status if s in UNRESOLVED]


class BadQuery(ValueError):
    """A filter the console cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class QueueQuery:
    status: str = ""  # "" the unresolved ones, "any" every status, or one status
    severity: str = ""
    rule_id: str = ""
    client_id: str = ""
    source: str = ""
    queue: str = ""
    silenced: str = ""  # "" those no silence holds (the on-call queue), "true" only silenced, "all" both
    sort: str = Sort.SEVERITY.value
    cursor: str = ""

    @classmethod
    def from_params(cls, params: QueryParams | dict[str, str]) -> QueueQuery:
        values: dict[str, str] = {}
        for name in cls.__dataclass_fields__:
            value = (params.get(name) or "").strip()
            limit = 1000 if name == "cursor" else 255
            if len(value) > limit:
                raise BadQuery(f"{name}: at most {limit} characters")
            problem = unstorable_text(value, name)
            if problem:
                raise BadQuery(problem)
            if value:
                values[name] = value
        query = cls(**values)
        if query.status not in ("", "any", *STATUSES):
            raise BadQuery(f"status: one of {', '.join(STATUSES)}")
        if query.severity and query.severity not in SEVERITIES:
            raise BadQuery(f"severity: one of {', '.join(SEVERITIES)}")
        if query.silenced not in ("", "true", "all"):
            raise BadQuery("silenced: true or all")
        if query.sort not in [s.value for s in Sort]:
            raise BadQuery(f"sort: one of {', '.join(s.value for s in Sort)}")
        return query

    @property
    def statuses(self) -> list[str]:
        if self.status == "any":
            return []
        return [self.status] if self.status else list(UNRESOLVED_STATUSES)

    def filters(self) -> store.ExceptionFilters:
        return store.ExceptionFilters(
            status=self.statuses,
            severity=[self.severity] if self.severity else [],
            rule_id=self.rule_id or None,
            client_id=self.client_id or None,
            source=self.source or None,
            queue=[self.queue] if self.queue else [],
            silenced={"": False, "true": True, "all": None}[self.silenced],
        )

    def url(self, **changes: Any) -> str:
        """The queue's URL for this query with `changes`; any change but paging starts at page one."""
        if "cursor" not in changes:
            changes["cursor"] = ""
        query = replace(self, **changes)
        pairs = [(name, getattr(query, name)) for name in self.__dataclass_fields__ if getattr(query, name)]
        return "/console/queue" + (f"?{urlencode(pairs)}" if pairs else "")

    def hidden_fields(self) -> list[tuple[str, str]]:
        return [(name, getattr(self, name)) for name in self.__dataclass_fields__ if getattr(self, name)]


@dataclass(frozen=True, slots=True)
class Counts:
    by_status: dict[str, int]
    by_severity: dict[str, int]
    total: int


async def counts(*, db: Database, query: QueueQuery) -> Counts:
    """How many exceptions each status and each severity would show, the other filters kept."""
    filters = query.filters()
    async with db.read() as session, session.begin():
        by_status = {
            status: await store.count_matching(session=session, filters=replace(filters, status=[]), statuses=[status])
            for status in STATUSES
        }
        by_severity = {
            severity: await store.count_matching(
                session=session, filters=replace(filters, severity=[severity]), statuses=query.statuses or STATUSES
            )
            for severity in SEVERITIES
        }
    total = sum(by_status[s] for s in (query.statuses or STATUSES))
    if query.severity:
        total = by_severity[query.severity]
    return Counts(by_status=by_status, by_severity=by_severity, total=total)
