"""Suggested decisions with their evidence (issue 26 item 3): for an unresolved exception, the
latest judged verdicts (confirmed, corrected, false_positive: the ones that say whether the flag
was right, as in verdicts.py) on its rule and client, or on its own subject when that has enough
of them, give a suggestion and the sentence that justifies it ("9 of the last 10 bid_over_cap for
tailspin were false positives; the last confirmed was 12 days ago").

Read with the caller's own statements, so access/scoping.py adds the caller's scope: a suggestion
is made only from verdicts the asker may see. A suggestion never resolves anything; it is advice
shown beside the exception (API, console, `loopgate ops show`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import sqlalchemy as sa

from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.outcomes.verdicts import JUDGED, RIGHT_FLAG
from loopgate.resolution_api.schemas import SuggestionRead
from loopgate_schemas.outcomes import Decision

HISTORY: Final = 10  # the last this many judged verdicts are the evidence
MIN_VERDICTS: Final = 3  # fewer judged verdicts than this: no suggestion, and the evidence says so
MIN_SUBJECT_VERDICTS: Final = 5  # the subject's own history is used once it has this many
MIN_SHARE: Final = 0.7  # the suggested side's share of the history; below it the history is mixed
UNRESOLVED: Final = ("open", "claimed", "escalated", "snoozed")


class Basis(StrEnum):
    SUBJECT = "subject"
    RULE_AND_CLIENT = "rule_and_client"


@dataclass(frozen=True, slots=True)
class Suggestion:
    """`decision` is None when the history is too short or mixed; `evidence` says which."""

    decision: Decision | None
    confidence: float | None  # Laplace-smoothed share of the suggested side: (k + 1) / (n + 2)
    basis: Basis
    verdicts: int  # judged verdicts in the evidence (at most HISTORY)
    flag_right: int  # of which confirmed or corrected
    evidence: str


@dataclass(frozen=True, slots=True)
class History:
    """Judged verdicts, newest first, and when the flag was last right and last wrong."""

    decisions: list[Decision]
    last_right: dt.datetime | None
    last_wrong: dt.datetime | None


def _ago(at: dt.datetime, now: dt.datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 3600:
        return "less than an hour ago"
    if seconds < 86400:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    days = int(seconds // 86400)
    return f"{days} day{'s' if days != 1 else ''} ago"


async def _history(*, db: Database, row: ExceptionRow, by_subject: bool) -> History:
    t = ExceptionRow
    conditions = [
        t.rule_id == row.rule_id,
        t.client_id.is_(None) if row.client_id is None else t.client_id == row.client_id,
        t.decision.in_([d.value for d in JUDGED]),
        t.resolved_at.is_not(None),
        t.id != row.id,
    ]
    if by_subject:
        conditions.append(t.subject == row.subject)
    latest = sa.select(t.decision).where(*conditions).order_by(t.resolved_at.desc(), t.id.desc()).limit(HISTORY)
    right = sa.select(sa.func.max(t.resolved_at)).where(*conditions, t.decision.in_([d.value for d in RIGHT_FLAG]))
    wrong = sa.select(sa.func.max(t.resolved_at)).where(*conditions, t.decision == Decision.FALSE_POSITIVE.value)
    async with db.read() as session, session.begin():
        decisions = [Decision(d) for d in (await session.scalars(latest)).all() if d is not None]
        last_right = await session.scalar(right)
        last_wrong = await session.scalar(wrong)
    return History(decisions=decisions, last_right=last_right, last_wrong=last_wrong)


def suggestion_from(*, row: ExceptionRow, history: History, basis: Basis, now: dt.datetime) -> Suggestion:
    """The suggestion a history gives (pure: the evaluator uses it too)."""
    n = len(history.decisions)
    right = sum(1 for d in history.decisions if d in RIGHT_FLAG)
    wrong = n - right
    what = f"{row.rule_id} on {row.subject}" if basis is Basis.SUBJECT else row.rule_id
    whose = f" for {row.client_id}" if row.client_id else ""
    if n < MIN_VERDICTS:
        said = "no judged verdict" if n == 0 else f"only {n} judged verdict{'s' if n != 1 else ''}"
        return Suggestion(None, None, basis, n, right, f"{said} on {what}{whose} yet: too few to suggest a decision")
    last = f"the last {n}" if n == HISTORY else f"the {n}"
    if wrong / n >= MIN_SHARE:
        evidence = f"{wrong} of {last} {what}{whose} were false positives; " + (
            f"the last confirmed was {_ago(history.last_right, now)}" if history.last_right else "none was confirmed"
        )
        return Suggestion(Decision.FALSE_POSITIVE, (wrong + 1) / (n + 2), basis, n, right, evidence)
    if right / n >= MIN_SHARE:
        corrected = sum(1 for d in history.decisions if d is Decision.CORRECTED)
        decision = Decision.CORRECTED if corrected > right - corrected else Decision.CONFIRMED
        how = f"confirmed ({corrected} of them corrected)" if corrected else "confirmed"
        evidence = f"{right} of {last} {what}{whose} were {how}; " + (
            f"the last false positive was {_ago(history.last_wrong, now)}"
            if history.last_wrong
            else "none was a false positive"
        )
        return Suggestion(decision, (right + 1) / (n + 2), basis, n, right, evidence)
    evidence = f"{right} of {last} {what}{whose} were confirmed and {wrong} false positives: too mixed to suggest"
    return Suggestion(None, None, basis, n, right, evidence)


async def suggest(*, db: Database, row: ExceptionRow, now: dt.datetime) -> Suggestion | None:
    """The suggestion for an unresolved exception (None for a resolved one), from its subject's
    verdicts when there are MIN_SUBJECT_VERDICTS of them, else its rule and client's."""
    if row.status not in UNRESOLVED:
        return None
    subject = await _history(db=db, row=row, by_subject=True)
    if len(subject.decisions) >= MIN_SUBJECT_VERDICTS:
        return suggestion_from(row=row, history=subject, basis=Basis.SUBJECT, now=now)
    rule_and_client = await _history(db=db, row=row, by_subject=False)
    return suggestion_from(row=row, history=rule_and_client, basis=Basis.RULE_AND_CLIENT, now=now)


async def suggested(*, db: Database, row: ExceptionRow, now: dt.datetime) -> SuggestionRead | None:
    """`suggest` as the API answers it (ExceptionRead.suggestion)."""
    made = await suggest(db=db, row=row, now=now)
    if made is None:
        return None
    return SuggestionRead(
        decision=made.decision,
        confidence=None if made.confidence is None else round(made.confidence, 4),
        basis=made.basis.value,
        verdicts=made.verdicts,
        flag_right=made.flag_right,
        evidence=made.evidence,
    )
