"""/v1/stats/verdicts: what operators decided, per rule (and per client, platform or model), over
a window of resolution times. Thin: parse, call verdicts.py with the app's clock."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from loopgate.resolution_api.http.auth import CanRead
from loopgate.resolution_api.http.deps import ServicesDep, reject_unstorable_params
from loopgate.resolution_api.http.errors import responses
from loopgate.resolution_api.outcomes import verdicts
from loopgate.resolution_api.outcomes.verdicts import GroupBy
from loopgate.resolution_api.schemas import Rfc3339
from loopgate_schemas.outcomes import Decision

router = APIRouter(prefix="/v1/stats", tags=["statistics"], dependencies=[Depends(reject_unstorable_params)])

# Rule ids and topics are identifiers: anything else in a filter is a typo or an attack, refused by name.
IDENTIFIER: Final = r"^[A-Za-z0-9_.:-]+$"


class TimeToResolve(BaseModel):
    median: float | None = Field(description="Nearest-rank median of seconds from first detection to resolution.")
    p90: float | None = Field(description="Nearest-rank 90th percentile of the same.")


class VerdictGroupRead(BaseModel):
    rule_id: str = Field(description="The rule.")
    by: dict[str, str | None] = Field(
        description='The group within the rule: {"client": ...}, {"platform": ...} or {"model": ...} (null: the '
        "exceptions without one); empty when grouped by rule alone."
    )
    counts: dict[Decision, int] = Field(
        description="Resolutions in the window per decision (the five verdicts, zeros too; for "
        "approval_gate, the three release decisions)."
    )
    resolved: int = Field(description="All resolutions in the window (the five decisions).")
    judged: int = Field(
        description="confirmed + corrected + false_positive: the decisions that say whether the flag was right "
        "(dismissed and escalated do not)."
    )
    precision: float | None = Field(description="(confirmed + corrected) / judged; null when nothing was judged.")
    time_to_resolve_seconds: TimeToResolve


class VerdictStats(BaseModel):
    since: AwareDatetime = Field(description="Start of the window of resolution times (inclusive).")
    until: AwareDatetime = Field(description="End of the window (exclusive).")
    group_by: GroupBy
    rule_id: str | None = Field(description="The rule asked for; null for every rule.")
    groups: list[VerdictGroupRead] = Field(description="One per rule (and group) with a resolution in the window.")


@router.get(
    "/verdicts",
    summary="Verdict statistics per rule, and per rule and client, platform or model",
    responses=responses(400, 401, 403),
)
async def verdict_stats(
    principal: CanRead,
    services: ServicesDep,
    group_by: Annotated[GroupBy, Query(description="rule (default), client, platform or model")] = GroupBy.RULE,
    rule_id: Annotated[str | None, Query(max_length=64, pattern=IDENTIFIER, description="Only this rule")] = None,
    since: Annotated[
        Rfc3339 | None,
        Query(
            description="Resolutions at or after this time (RFC 3339, with an offset); default: 30 days before until"
        ),
    ] = None,
    until: Annotated[
        Rfc3339 | None, Query(description="Resolutions before this time (RFC 3339, with an offset); default: now")
    ] = None,
) -> VerdictStats:
    window = verdicts.window_of(since, until, services.clock())
    groups = await verdicts.verdict_stats(db=services.db, group_by=group_by, window=window, rule_id=rule_id)
    return VerdictStats(
        since=window.since,
        until=window.until,
        group_by=group_by,
        rule_id=rule_id,
        groups=[
            VerdictGroupRead(
                rule_id=g.rule_id,
                by={} if group_by is GroupBy.RULE else {group_by.value: g.key},
                counts=g.counts,
                resolved=g.resolved,
                judged=g.judged,
                precision=g.precision,
                time_to_resolve_seconds=TimeToResolve(median=g.median_seconds, p90=g.p90_seconds),
            )
            for g in groups
        ],
    )
