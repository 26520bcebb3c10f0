"""Training-data export (contract v2, issue 15 item 4): decided exceptions as newline-delimited
JSON, one TrainingRecord per line (training.py), oldest resolution first.

Streamed in keyset pages on (resolved_at, id): each page is its own short read transaction of
`page_rows` rows, turned into lines and let go before the next is read, so memory stays flat over
any number of rows and no transaction or connection is held for the whole download (a server-side
cursor would hold one for as long as the client takes to read). `until` defaults to the time of the
request, so an export ends even while operators keep resolving."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Final

import sqlalchemy as sa

from loopgate.common import metrics
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SecondReviewRow
from loopgate.resolution_api.domain_errors import InvalidRequest
from loopgate.resolution_api.outcomes.training import training_record_of
from loopgate.resolution_api.review.blind import not_sealed
from loopgate.resolution_api.review.flow import reviews_of

MEDIA_TYPE: Final = "application/x-ndjson"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportFilters:
    """Which decided exceptions: resolved in [since, until), and each filter given."""

    until: dt.datetime
    since: dt.datetime | None = None
    rule_id: str | None = None
    client_id: str | None = None
    source: str | None = None
    model: str | None = None
    decisions: Collection[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.since is not None and self.since >= self.until:
            raise InvalidRequest(f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})")


def _conditions(filters: ExportFilters) -> list[sa.ColumnElement[bool]]:
    t = ExceptionRow
    conditions = [t.resolved_at.is_not(None), t.decision.is_not(None), t.resolved_at < filters.until, not_sealed()]
    if filters.since is not None:
        conditions.append(t.resolved_at >= filters.since)
    if filters.rule_id is not None:
        conditions.append(t.rule_id == filters.rule_id)
    if filters.client_id is not None:
        conditions.append(t.client_id == filters.client_id)
    if filters.source is not None:
        conditions.append(t.source == filters.source)
    if filters.model is not None:
        conditions.append(t.event[("data", "model")].as_string() == filters.model)
    if filters.decisions:
        conditions.append(t.decision.in_(list(filters.decisions)))
    return conditions


async def pages(*, db: Database, filters: ExportFilters, page_rows: int) -> AsyncIterator[list[ExceptionRow]]:
    """The matching exceptions, page by page (each page one read transaction), by (resolved_at, id)."""
    t = ExceptionRow
    conditions = _conditions(filters)
    after: tuple[dt.datetime, str] | None = None
    while True:
        stmt = sa.select(t).where(*conditions).order_by(t.resolved_at, t.id).limit(page_rows)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(sa.or_(t.resolved_at > at, sa.and_(t.resolved_at == at, t.id > last_id)))
        async with db.read() as session, session.begin():
            rows = list((await session.scalars(stmt)).all())
        if not rows:
            return
        yield rows
        if len(rows) < page_rows:
            return
        last = rows[-1]
        assert last.resolved_at is not None
        after = (last.resolved_at, last.id)


async def ndjson(*, db: Database, filters: ExportFilters, page_rows: int) -> AsyncIterator[bytes]:
    """The export's body: one JSON training record per line, a page of lines per chunk. A row that
    cannot be made a training record is set aside (logged with its id and reason, counted in
    `loopgate_rows_set_aside_total{where="training_export"}`) and the stream goes on."""
    async for page in pages(db=db, filters=filters, page_rows=page_rows):
        reviews = await reviews_of(db=db, rows=page)
        yield b"".join(line for line in (_line(row, reviews.get(row.id)) for row in page) if line is not None)


def _line(row: ExceptionRow, review: SecondReviewRow | None = None) -> bytes | None:
    try:
        return training_record_of(row, review).model_dump_json().encode() + b"\n"
    except Exception as err:  # one bad row: set aside, never the whole download cut short
        reason = f"{type(err).__name__}: {err}"[:300].replace("\n", " ")
        metrics.ROWS_SET_ASIDE.labels("training_export").inc()
        log.warning("training export: exception %r set aside: %s", row.id, reason)
        return None
