"""/v1/reviews: the blind second review (a pending review never shows the first decision to anyone
but its resolver), and /v1/stats/agreement: how often the two agree, per rule or per resolver.
Thin: parse, call review/."""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from loopgate.resolution_api.exceptions.lifecycle import resolution_problem
from loopgate.resolution_api.http.auth import CanRead, CanWork
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.outcomes import verdicts
from loopgate.resolution_api.review import agreement, flow
from loopgate.resolution_api.review.agreement import AgreementBy
from loopgate.resolution_api.review.blind import PENDING
from loopgate.resolution_api.schemas import ExceptionRead, Reason, RequestBody, Rfc3339
from loopgate_schemas.outcomes import Decision

router = APIRouter(prefix="/v1/reviews", tags=["second review"], dependencies=[Depends(reject_unstorable_params)])
stats_router = APIRouter(prefix="/v1/stats", tags=["statistics"], dependencies=[Depends(reject_unstorable_params)])
IDENTIFIER = r"^[A-Za-z0-9_.:-]+$"


class ReviewRead(BaseModel):
    exception_id: str
    resolution_count: int
    rule_id: str
    queue: str
    client_id: str | None
    chosen_by: str = Field(description="first_resolutions (an operator's first N) or share")
    status: str = Field(description="pending, agreed, disagreed or adjudicated")
    first_resolver: str | None = Field(description="Null while pending: the review is blind")
    first_decision: Decision | None = Field(description="Null while pending: the review is blind")
    reviewer: str | None
    second_decision: Decision | None
    reviewed_at: AwareDatetime | None
    lead_exception_id: str | None = Field(description="The disagreement's exception in the lead queue")
    final_decision: Decision | None = Field(description="The lead's decision (final, the gold label)")
    adjudicated_by: str | None
    exception: ExceptionRead = Field(description="The exception as the caller may see it (sealed while pending)")

    @classmethod
    def of(cls, item: flow.ReviewItem) -> ReviewRead:
        r = item.review
        blind = r.status == PENDING
        return cls(
            exception_id=r.exception_id,
            resolution_count=r.resolution_count,
            rule_id=r.rule_id,
            queue=r.queue,
            client_id=r.client_id,
            chosen_by=r.chosen_by,
            status=r.status,
            first_resolver=None if blind else r.first_resolver,
            first_decision=None if blind else Decision(r.first_decision),
            reviewer=r.reviewer,
            second_decision=Decision(r.second_decision) if r.second_decision else None,
            reviewed_at=r.reviewed_at,
            lead_exception_id=r.lead_exception_id,
            final_decision=Decision(r.final_decision) if r.final_decision else None,
            adjudicated_by=r.adjudicated_by,
            exception=ExceptionRead.from_row(item.exception),
        )


class ReviewList(BaseModel):
    items: list[ReviewRead]


class SecondDecision(RequestBody):
    decision: Decision
    reason: str = Reason

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.decision is Decision.CORRECTED:
            raise ValueError("a second review judges the decision, not the correction: say confirmed instead")
        problem = resolution_problem(self.decision, self.reason, {})
        if problem:
            raise ValueError(problem)
        return self


@router.get(
    "", summary="Pending second reviews the caller may do (never their own resolutions)", responses=responses(401, 403)
)
async def list_reviews(
    principal: CanWork, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> ReviewList:
    items = await flow.pending(db=services.db, viewer=principal.name, limit=limit)
    return ReviewList(items=[ReviewRead.of(i) for i in items])


@router.get("/{exception_id}", summary="The second review of one exception", responses=responses(401, 403, 404))
async def get_review(exception_id: str, principal: CanRead, services: ServicesDep) -> ReviewRead:
    return ReviewRead.of(await flow.get(db=services.db, exception_id=exception_id))


@router.post(
    "/{exception_id}/decision",
    summary="Decide blind; the first decision is shown in the answer. A disagreement goes to the lead queue.",
    responses=responses(400, 401, 403, 404, 409, 413),
)
async def decide(exception_id: str, body: SecondDecision, principal: CanWork, services: ServicesDep) -> ReviewRead:
    item = await flow.decide(
        db=services.db,
        exception_id=exception_id,
        reviewer=principal.name,
        decision=body.decision,
        reason=body.reason,
        clock=services.clock,
    )
    return ReviewRead.of(item)


class AgreementRead(BaseModel):
    key: str = Field(description="The rule, or the first resolver; empty for the overall figure")
    pairs: int = Field(description="Decided second reviews")
    agreed: int
    raw_agreement: float | None = Field(description="agreed / pairs; null with no pairs")
    kappa: float | None = Field(
        description="Cohen's kappa of the two decisions; null with no pairs or when chance agreement is 1 "
        "(every decision the same label)"
    )
    table: list[tuple[Decision, Decision, int]] = Field(description="(first, second, count) for each non-zero cell")

    @classmethod
    def of(cls, group: agreement.AgreementGroup) -> AgreementRead:
        f = group.figures
        return cls(
            key=group.key,
            pairs=f.pairs,
            agreed=f.agreed,
            raw_agreement=f.raw,
            kappa=f.kappa,
            table=[(Decision(a), Decision(b), n) for (a, b), n in sorted(group.table.items())],
        )


class AgreementStats(BaseModel):
    since: AwareDatetime
    until: AwareDatetime
    group_by: AgreementBy
    rule_id: str | None
    overall: AgreementRead
    groups: list[AgreementRead]
    truncated: bool = Field(description=f"More than {agreement.MAX_REVIEWS} reviews: only the first were counted")


@stats_router.get(
    "/agreement",
    summary="Agreement of first and second reviewers (raw and Cohen's kappa), per rule or per resolver",
    responses=responses(400, 401, 403),
)
async def agreement_stats(
    principal: CanRead,
    services: ServicesDep,
    group_by: Annotated[AgreementBy, Query(description="rule (default) or resolver")] = AgreementBy.RULE,
    rule_id: Annotated[str | None, Query(max_length=64, pattern=IDENTIFIER)] = None,
    since: Annotated[Rfc3339 | None, Query(description="Reviews at or after this time; default 30 days")] = None,
    until: Annotated[Rfc3339 | None, Query(description="Reviews before this time; default now")] = None,
) -> AgreementStats:
    window = verdicts.window_of(since, until, services.clock())
    overall, groups, truncated = await agreement.agreement_stats(
        db=services.db, group_by=group_by, window=window, rule_id=rule_id
    )
    return AgreementStats(
        since=window.since,
        until=window.until,
        group_by=group_by,
        rule_id=rule_id,
        overall=AgreementRead.of(overall),
        groups=[AgreementRead.of(g) for g in groups],
        truncated=truncated,
    )
