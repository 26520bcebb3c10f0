"""Agreement between first and second reviewers, per rule or per (first) resolver, over a window of
second-review times: raw agreement and Cohen's kappa (kappa.py) of their decisions. The statement is
an ORM select over second_reviews, so scoping.py keeps it to the caller's exceptions."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from loopgate.common import metrics
from loopgate.resolution_api.access.permissions import AGENCY_WIDE
from loopgate.resolution_api.access.scoping import acting_as
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import SecondReviewRow
from loopgate.resolution_api.outcomes.verdicts import DEFAULT_WINDOW, Window
from loopgate.resolution_api.review.kappa import Agreement, agreement

_INSTANT = dt.timedelta(microseconds=1)  # the gauges' window includes a review decided at `now`
MAX_REVIEWS = 200_000  # a window's reviews read at most; beyond it the answer says it is truncated


class AgreementBy(StrEnum):
    RULE = "rule"
    RESOLVER = "resolver"


@dataclass(frozen=True, slots=True)
class AgreementGroup:
    key: str
    figures: Agreement
    table: dict[tuple[str, str], int]


async def agreement_stats(
    *, db: Database, group_by: AgreementBy, window: Window, rule_id: str | None = None
) -> tuple[AgreementGroup, list[AgreementGroup], bool]:
    """Every decided review in the window (overall), and per group; and whether MAX_REVIEWS cut it."""
    column = SecondReviewRow.rule_id if group_by is AgreementBy.RULE else SecondReviewRow.first_resolver
    stmt = (
        sa.select(column, SecondReviewRow.first_decision, SecondReviewRow.second_decision)
        .where(
            SecondReviewRow.second_decision.is_not(None),
            SecondReviewRow.reviewed_at >= window.since,
            SecondReviewRow.reviewed_at < window.until,
        )
        .order_by(SecondReviewRow.reviewed_at, SecondReviewRow.id)
        .limit(MAX_REVIEWS + 1)
    )
    if rule_id is not None:
        stmt = stmt.where(SecondReviewRow.rule_id == rule_id)
    async with db.read() as session, session.begin():
        rows = (await session.execute(stmt)).all()
    truncated = len(rows) > MAX_REVIEWS
    tables: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[tuple[str, str], int] = defaultdict(int)
    for key, first, second in rows[:MAX_REVIEWS]:
        if second is None:  # the WHERE leaves these out; said again for the type checker
            continue
        tables[key][(first, second)] += 1
        overall[(first, second)] += 1
    groups = [AgreementGroup(key, agreement(table), dict(table)) for key, table in sorted(tables.items())]
    return AgreementGroup("", agreement(overall), dict(overall)), groups, truncated


def _value(figure: float | None) -> float:
    return math.nan if figure is None else figure


async def refresh_gauges(*, db: Database, now: dt.datetime) -> None:
    """The dashboard's agreement gauges, every rule and overall, over the 30 days before `now` (agency-wide)."""
    with acting_as(AGENCY_WIDE):
        overall, groups, _ = await agreement_stats(
            db=db, group_by=AgreementBy.RULE, window=Window(since=now - DEFAULT_WINDOW, until=now + _INSTANT)
        )
    for group, rule in [(overall, "all"), *((g, g.key) for g in groups)]:
        metrics.SECOND_REVIEW_AGREEMENT.labels(rule, "raw").set(_value(group.figures.raw))
        metrics.SECOND_REVIEW_AGREEMENT.labels(rule, "kappa").set(_value(group.figures.kappa))
