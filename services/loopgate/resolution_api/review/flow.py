"""The second review's life: chosen in the resolve transaction (`after_resolve`), decided blind by
a second person (`decide`), and, when the two differ, a disagreement exception of its own routed to
the lead queue, whose resolution is final (`after_resolve` again, on that exception).

The policy (config.py) is the process's: `use_policy` at start (app.py), NOTHING_REVIEWED until then.
The first N of an operator counts their resolutions agency-wide (the exceptions' resolver column)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from loopgate.common import metrics
from loopgate.resolution_api.access.permissions import AGENCY_WIDE
from loopgate.resolution_api.access.scoping import acting_as
from loopgate.resolution_api.clock import Clock, utcnow
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow, SecondReviewRow
from loopgate.resolution_api.domain_errors import Conflict, NotAllowed, NotFound
from loopgate.resolution_api.exceptions import creation
from loopgate.resolution_api.queues.routing import RoutingTable
from loopgate.resolution_api.review import agreement
from loopgate.resolution_api.review.blind import PENDING
from loopgate.resolution_api.review.config import NOTHING_REVIEWED, ReviewPolicy, chosen
from loopgate_schemas.exceptions import ExceptionRecord, Kind, Severity
from loopgate_schemas.outcomes import Decision

log = logging.getLogger(__name__)
DISAGREEMENT_RULE = "second_review_disagreement"
DISAGREEMENT_SOURCE = "loopgate.second-review"
AGREED, DISAGREED, ADJUDICATED = "agreed", "disagreed", "adjudicated"
_NAMESPACE = uuid.UUID("6f1d2c53-9a55-4a43-8f0e-2b7f3c1f5e26")

_policy: list[ReviewPolicy] = [NOTHING_REVIEWED]


def use_policy(policy: ReviewPolicy) -> None:
    _policy[0] = policy


def active_policy() -> ReviewPolicy:
    return _policy[0]


async def _resolutions_before(session: AsyncSession, resolver: str, limit: int) -> int:
    """How many other resolved exceptions `resolver` resolved (counted up to `limit`), agency-wide."""
    with acting_as(AGENCY_WIDE):
        capped = (
            sa.select(ExceptionRow.id)
            .where(ExceptionRow.resolver == resolver, ExceptionRow.status == "resolved")
            .limit(limit + 1)
            .subquery()
        )
        total = (await session.execute(sa.select(sa.func.count()).select_from(capped))).scalar_one()
    return max(int(total) - 1, 0)  # the exception just resolved is one of them


async def after_resolve(session: AsyncSession, row: ExceptionRow, now: dt.datetime) -> None:
    """In the resolve transaction: a lead's resolution of a disagreement is the final decision; any
    other resolution may be chosen for a second review (and its decision sealed until then)."""
    if row.rule_id == DISAGREEMENT_RULE and row.source == DISAGREEMENT_SOURCE:
        await _adjudicate(session, row, now)
        return
    policy = active_policy()
    if policy.reviews_nothing or not row.resolver or not row.decision:
        return
    prior = (
        await _resolutions_before(session, row.resolver, policy.first_resolutions)
        if policy.first_resolutions
        else policy.first_resolutions
    )
    why = chosen(
        policy,
        exception_id=row.id,
        resolution_count=row.resolution_count,
        rule_id=row.rule_id,
        queue=row.queue,
        resolver_prior=prior,
    )
    if why is None:
        if row.second_review is not None:  # an earlier resolution's review (before a reopen) is not this one's
            row.second_review = None
        return
    session.add(
        SecondReviewRow(
            exception_id=row.id,
            resolution_count=row.resolution_count,
            rule_id=row.rule_id,
            queue=row.queue,
            client_id=row.client_id,
            chosen_by=why,
            status=PENDING,
            first_resolver=row.resolver,
            first_decision=row.decision,
            created_at=now,
        )
    )
    row.second_review = PENDING  # written with the transaction, and in the resolver's answer
    metrics.SECOND_REVIEWS.labels("chosen").inc()


async def _mark(session: AsyncSession, exception_id: str, state: str) -> None:
    """The exception's second-review state (not a change of its own: no version bump, no history)."""
    await session.execute(
        sa.update(ExceptionRow)
        .where(ExceptionRow.id == exception_id)
        .values(second_review=state)
        .execution_options(synchronize_session=False)
    )


async def _adjudicate(session: AsyncSession, lead_row: ExceptionRow, now: dt.datetime) -> None:
    review = (
        await session.execute(sa.select(SecondReviewRow).where(SecondReviewRow.lead_exception_id == lead_row.id))
    ).scalar_one_or_none()
    if review is None or review.status != DISAGREED:
        return
    review.status = ADJUDICATED
    review.final_decision = lead_row.decision
    review.adjudicated_by = lead_row.resolver
    review.adjudicated_at = now
    await _mark(session, review.exception_id, ADJUDICATED)
    metrics.SECOND_REVIEWS.labels(ADJUDICATED).inc()


@dataclass(frozen=True, slots=True)
class ReviewItem:
    review: SecondReviewRow
    exception: ExceptionRow


async def pending(*, db: Database, viewer: str, limit: int) -> list[ReviewItem]:
    """Pending reviews the viewer may do (in their scope; never their own resolutions), oldest first."""
    async with db.read() as session, session.begin():
        rows = (
            await session.execute(
                sa.select(SecondReviewRow, ExceptionRow)
                .join(ExceptionRow, ExceptionRow.id == SecondReviewRow.exception_id)
                .where(SecondReviewRow.status == PENDING, SecondReviewRow.first_resolver != viewer)
                .order_by(SecondReviewRow.created_at, SecondReviewRow.id)
                .limit(limit)
            )
        ).all()
    return [ReviewItem(review, exception) for review, exception in rows]


async def _latest(session: AsyncSession, exception_id: str) -> ReviewItem:
    found = (
        await session.execute(
            sa.select(SecondReviewRow, ExceptionRow)
            .join(ExceptionRow, ExceptionRow.id == SecondReviewRow.exception_id)
            .where(SecondReviewRow.exception_id == exception_id)
            .order_by(SecondReviewRow.resolution_count.desc())
            .limit(1)
        )
    ).first()
    if found is None:
        raise NotFound(f"no second review of exception {exception_id!r}")
    return ReviewItem(found[0], found[1])


async def get(*, db: Database, exception_id: str) -> ReviewItem:
    async with db.read() as session, session.begin():
        return await _latest(session, exception_id)


def _disagreement_record(item: ReviewItem, now: dt.datetime) -> ExceptionRecord:
    review, original = item.review, item.exception
    key = f"{review.exception_id}:{review.resolution_count}"
    return ExceptionRecord(
        exception_id=str(uuid.uuid5(_NAMESPACE, key)),
        fingerprint=f"{DISAGREEMENT_RULE}:{key}"[:512],
        kind=Kind.POLICY,
        rule_id=DISAGREEMENT_RULE,
        severity=Severity.MEDIUM,
        source=DISAGREEMENT_SOURCE,
        subject=review.exception_id,
        client_id=original.client_id,
        summary=(
            f"Two reviewers disagree on {review.rule_id} exception {review.exception_id}: "
            f"{review.first_decision} ({review.first_resolver}) vs {review.second_decision} ({review.reviewer}); "
            "resolve this with the decision the exception should have had (final)"
        )[:1000],
        observed={
            "exception_id": review.exception_id,
            "rule_id": review.rule_id,
            "first": {"resolver": review.first_resolver, "decision": review.first_decision, "reason": original.reason},
            "second": {"reviewer": review.reviewer, "decision": review.second_decision, "reason": review.second_reason},
        },
        detected_at=now,
    )


async def decide(
    *, db: Database, exception_id: str, reviewer: str, decision: Decision, reason: str, clock: Clock = utcnow
) -> ReviewItem:
    """Record the second decision; a disagreement opens an exception in the lead queue."""
    now = clock()
    async with db.write() as session, session.begin():
        item = await _latest(session, exception_id)
        review = item.review
        # The same disagreement sent again (a retry after a lost answer): open its lead exception if it is not yet.
        retried = review.status == DISAGREED and (review.reviewer, review.second_decision) == (reviewer, decision.value)
        if review.status != PENDING and not retried:
            raise Conflict(f"the second review of exception {exception_id!r} was decided already ({review.status})")
        if review.first_resolver == reviewer:
            raise NotAllowed(f"{reviewer!r} resolved exception {exception_id!r}: a second review needs another person")
        if not retried:
            agreed = decision.value == review.first_decision
            review.status = AGREED if agreed else DISAGREED
            review.reviewer = reviewer
            review.second_decision = decision.value
            review.second_reason = reason
            review.reviewed_at = now
            await _mark(session, exception_id, review.status)
        record = None if review.status == AGREED else _disagreement_record(item, review.reviewed_at or now)
        if record is not None:
            review.lead_exception_id = record.exception_id
    if not retried:
        metrics.SECOND_REVIEWS.labels(review.status).inc()
    try:
        await agreement.refresh_gauges(db=db, now=now)
    except Exception:  # the decision is stored: the dashboard catches up at the next one
        log.warning("second review: the agreement gauges could not be refreshed", exc_info=True)
    if record is not None:  # idempotent on its exception_id: a retry finds the same one
        routing = RoutingTable(default_queue=active_policy().lead_queue)
        with acting_as(AGENCY_WIDE):  # the lead queue may be outside the reviewer's scope; theirs to open
            await creation.create_or_group(
                db=db, received=[creation.Received(record=record, actor=reviewer)], clock=clock, routing=routing
            )
    return await get(db=db, exception_id=exception_id)


async def reviews_of(*, db: Database, rows: list[ExceptionRow]) -> dict[str, SecondReviewRow]:
    """The second review of each row's current resolution, by exception id (the training export's page)."""
    wanted = {row.id: row.resolution_count for row in rows if row.second_review is not None}
    if not wanted:
        return {}
    async with db.read() as session, session.begin():
        found = (
            await session.scalars(sa.select(SecondReviewRow).where(SecondReviewRow.exception_id.in_(sorted(wanted))))
        ).all()
    return {r.exception_id: r for r in found if wanted.get(r.exception_id) == r.resolution_count}
