"""Verdict statistics (contract v2, issue 15 item 2): per rule, and per rule x client, platform or
model, over a window of resolution times: counts per decision, precision, and the median and 90th
percentile time to resolve. Read from the stored exceptions (their latest resolution each), so any
window can be asked; Prometheus gets counters bumped at resolution instead (`count_resolution`).

Precision is (confirmed + corrected) / judged, where judged = confirmed + corrected +
false_positive: the three decisions that say whether the flag was right. `dismissed` (not worth
acting on) and `escalated` (handed outside Loopgate) say nothing about the rule and are counted but
left out of precision; precision is null when nothing was judged.

Percentiles are nearest-rank over the group's resolutions (all five decisions): the value at
rank ceil(p x n) in ascending order, so the median of 4 values is the 2nd. They are computed from
one ordered, streamed query (ranks known from the counts first), so memory stays flat however many
resolutions the window holds.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, cast

import sqlalchemy as sa

from loopgate.common import metrics
from loopgate.resolution_api.approvals.release import VERDICTS, decisions_of
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.domain_errors import InvalidRequest
from loopgate_schemas.outcomes import Decision

DEFAULT_WINDOW: Final = dt.timedelta(days=30)
MAX_WINDOW: Final = dt.timedelta(days=366)
RIGHT_FLAG: Final = (Decision.CONFIRMED, Decision.CORRECTED)
JUDGED: Final = (Decision.CONFIRMED, Decision.CORRECTED, Decision.FALSE_POSITIVE)
STREAM_ROWS: Final = 1000


class GroupBy(StrEnum):
    """What to split each rule's verdicts by (platform and model come from the stored event)."""

    RULE = "rule"
    CLIENT = "client"
    PLATFORM = "platform"
    MODEL = "model"


def _group_column(group_by: GroupBy) -> sa.ColumnElement[Any]:
    t = ExceptionRow
    if group_by is GroupBy.CLIENT:
        return cast(sa.ColumnElement[Any], t.client_id)
    if group_by is GroupBy.PLATFORM:
        return cast(sa.ColumnElement[Any], t.event[("data", "platform")].as_string())
    if group_by is GroupBy.MODEL:
        return cast(sa.ColumnElement[Any], t.event[("data", "model")].as_string())
    return sa.null()


@dataclass(frozen=True, slots=True)
class Window:
    since: dt.datetime
    until: dt.datetime


def window_of(since: dt.datetime | None, until: dt.datetime | None, now: dt.datetime) -> Window:
    """[since, until) of resolution times: until defaults to now, since to 30 days before until;
    at most MAX_WINDOW long, since before until."""
    until = until or now
    try:
        since = since or until - DEFAULT_WINDOW
    except OverflowError:
        raise InvalidRequest(f"until ({until.isoformat()}) leaves no room for the default 30-day window") from None
    if since >= until:
        raise InvalidRequest(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    if until - since > MAX_WINDOW:
        raise InvalidRequest(
            f"the window from {since.isoformat()} to {until.isoformat()} is longer than {MAX_WINDOW.days} days; "
            "ask for a shorter one"
        )
    return Window(since=since, until=until)


@dataclass(slots=True)
class VerdictGroup:
    """The verdicts on one rule (and one client, platform or model, when grouped so)."""

    rule_id: str
    key: str | None
    counts: dict[Decision, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    median_seconds: float | None = None
    p90_seconds: float | None = None

    @property
    def resolved(self) -> int:
        return sum(self.counts.values())

    @property
    def judged(self) -> int:
        return sum(self.counts.get(d, 0) for d in JUDGED)

    @property
    def precision(self) -> float | None:
        return sum(self.counts.get(d, 0) for d in RIGHT_FLAG) / self.judged if self.judged else None


def nearest_rank(p: float, n: int) -> int:
    """1-based rank of the p-th quantile among n sorted values (nearest-rank method)."""
    return max(1, math.ceil(p * n))


async def verdict_stats(
    *, db: Database, group_by: GroupBy, window: Window, rule_id: str | None = None
) -> list[VerdictGroup]:
    """The groups with at least one resolution in the window, by rule then key (nulls last)."""
    t = ExceptionRow
    key = _group_column(group_by).label("group_key")
    conditions = [t.resolved_at >= window.since, t.resolved_at < window.until, t.decision.is_not(None)]
    if rule_id is not None:
        conditions.append(t.rule_id == rule_id)
    keys = [t.rule_id] if group_by is GroupBy.RULE else [t.rule_id, key]
    counted = sa.select(t.rule_id, key, t.decision, sa.func.count()).where(*conditions).group_by(*keys, t.decision)
    ordered = (
        sa.select(t.rule_id, key, t.time_to_resolve_seconds)
        .where(*conditions)
        .order_by(*keys, t.time_to_resolve_seconds)
    )
    groups: dict[tuple[str, str | None], VerdictGroup] = {}
    async with db.read() as session, session.begin():
        for rule, group_key, decision, count in (await session.execute(counted)).all():
            group = groups.get((rule, group_key))
            if group is None:
                group = groups[(rule, group_key)] = VerdictGroup(
                    rule_id=rule, key=group_key, counts=dict.fromkeys(decisions_of(rule), 0)
                )
            group.counts[Decision(decision)] = group.counts.get(Decision(decision), 0) + count
        rank: dict[tuple[str, str | None], int] = defaultdict(int)
        result = await session.stream(ordered.execution_options(yield_per=STREAM_ROWS))
        async for rule, group_key, seconds in result:
            group = groups[(rule, group_key)]
            rank[(rule, group_key)] += 1
            position = rank[(rule, group_key)]
            if position == nearest_rank(0.5, group.resolved):
                group.median_seconds = seconds
            if position == nearest_rank(0.9, group.resolved):
                group.p90_seconds = seconds
    return sorted(groups.values(), key=lambda g: (g.rule_id, g.key is None, g.key or ""))


def count_resolution(*, rule_id: str, decision: str, time_to_resolve_seconds: float) -> None:
    """Prometheus, at each final resolution: verdicts per rule and decision, time to resolve per rule
    (bounded labels; the window, client, platform and model questions go to the API)."""
    rule = metrics.rule_label(rule_id)  # records may carry any rule_id: unknown ones fold into `other`
    metrics.RESOLUTIONS.labels(decision, rule).inc()
    metrics.RULE_TIME_TO_RESOLVE.labels(rule).observe(time_to_resolve_seconds)
