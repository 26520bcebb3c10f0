"""Request and response bodies of the resolution API (the record itself is the contract's
ExceptionRecord, accepted as it is)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from loopgate.common.settings import Settings
from loopgate.resolution_api.access.permissions import Role
from loopgate.resolution_api.db.models import ExceptionEventRow, ExceptionRow, TokenRow
from loopgate.resolution_api.exceptions.lifecycle import Status, resolution_problem
from loopgate.resolution_api.http.limits import value_depth
from loopgate.resolution_api.review import blind
from loopgate_schemas.exceptions import EventRef, ExceptionRecord, Impact, Kind, Severity
from loopgate_schemas.outcomes import Decision, FieldChange

Reason = Field(default="", max_length=4000)

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 date-times with an offset: no bare dates, no unix timestamps, no local times."""
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        hint = " (a '+' in a query string must be sent as %2B)" if re.search(r"\d \d{2}:\d{2}$", value) else ""
        raise PydanticCustomError(
            "rfc3339",
            "must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T09:16:41Z{hint}",
            {"hint": hint},
        )
    return value


# Times a client may send: anything outside is a typo or an attack, never a real deadline or filter.
EARLIEST_TIME = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


def _plausible_time(value: dt.datetime) -> dt.datetime:
    """In UTC, between 1970 and 2200: no overflow when converted or compared, no absurd years."""
    try:
        in_utc = value.astimezone(dt.UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST_TIME <= in_utc < LATEST_TIME:
        raise PydanticCustomError(
            "time_range",
            "must be between {earliest} and {latest}",
            {"earliest": EARLIEST_TIME.isoformat(), "latest": LATEST_TIME.isoformat()},
        )
    return in_utc


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_plausible_time)]


def _rfc3339_only(value: Any) -> Any:
    """A record's times are RFC 3339 text (the contract): never a number read as a Unix time."""
    if isinstance(value, dt.datetime):  # a record built in Python (from_attributes)
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 date-time with an offset, e.g. 2026-11-24T09:16:41Z")
    return _rfc3339(value)


RecordTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_plausible_time)]
PlausibleTime = Annotated[AwareDatetime, AfterValidator(_plausible_time)]


MAX_RECORD_OCCURRENCES = 2**31 - 1


def unstorable_text(value: Any, path: str = "") -> str | None:
    """Where the first string (or key) is that no database can store: NUL characters (PostgreSQL
    refuses them) or lone surrogates (not UTF-8), as "path: problem". None when all is storable."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'value'}: NUL characters (\\u0000) are not allowed"
        if not value.isascii():  # only then can there be a surrogate; the encoder finds it in C
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{path or 'value'}: lone surrogate characters are not allowed"
        return None
    if isinstance(value, BaseModel):
        value = value.__dict__
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        # the path names the key as text a response can carry: a lone surrogate in it is escaped
        name = key.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(key, str) else str(key)
        child = f"{path}.{name}" if path else name
        problem = unstorable_text(key, f"{child} (key)") or unstorable_text(item, child)
        if problem:
            return problem
    return None


def _check_storable(model: BaseModel) -> None:
    problem = unstorable_text(model.__dict__)
    if problem:
        raise PydanticCustomError("unstorable_text", problem)


class RequestBody(BaseModel):
    """Requests refuse unknown fields, so a typo is a 422 and not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _storable(self) -> Self:
        _check_storable(self)
        return self


class ExceptionCreate(ExceptionRecord):
    """The contract's exception record, plus what the database needs: storable text, a count that
    fits, and a detected_at that is RFC 3339 text between 1970 and 2200 (in UTC once read). Where
    detected_at may lie around the API's clock is the route's check (`RecordWindow`)."""

    detected_at: RecordTime = Field(
        description="When the detector produced the record, RFC 3339 with a UTC offset; at most "
        "LOOPGATE_RECORD_MAX_AGE_SECONDS (30 days) before the API's clock and LOOPGATE_RECORD_MAX_AHEAD_SECONDS "
        "(5 minutes) after it."
    )

    @model_validator(mode="after")
    def _storable(self) -> Self:
        _check_storable(self)
        if self.occurrences > MAX_RECORD_OCCURRENCES:
            raise PydanticCustomError(
                "occurrences_too_large", f"occurrences: at most {MAX_RECORD_OCCURRENCES} per record"
            )
        return self


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


@dataclass(frozen=True, slots=True)
class RecordWindow:
    """Where a record's detected_at may lie around the API's clock: anything else is a broken
    clock or a hostile sender, and its times would overflow date arithmetic or breach every SLA."""

    max_age_seconds: float
    max_ahead_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RecordWindow:
        return cls(settings.record_max_age_seconds, settings.record_max_ahead_seconds)

    def problem(self, record: ExceptionRecord, now: dt.datetime) -> dict[str, Any] | None:
        """The 422 error (loc, msg, type) naming detected_at when it is outside the window at `now`; None inside."""
        detected = record.detected_at.astimezone(dt.UTC)  # ExceptionCreate has checked that it converts
        earliest = now - dt.timedelta(seconds=self.max_age_seconds)
        latest = now + dt.timedelta(seconds=self.max_ahead_seconds)
        if detected < earliest:
            message = (
                f"must be at most {_duration(self.max_age_seconds)} before the API's clock "
                f"(LOOPGATE_RECORD_MAX_AGE_SECONDS), i.e. at or after {earliest.isoformat()}; "
                f"got {detected.isoformat()}"
            )
        elif detected > latest:
            message = (
                f"must be at most {_duration(self.max_ahead_seconds)} after the API's clock "
                f"(LOOPGATE_RECORD_MAX_AHEAD_SECONDS), i.e. at or before {latest.isoformat()}; "
                f"got {detected.isoformat()}"
            )
        else:
            return None
        return {"loc": ("body", "detected_at"), "msg": message, "type": "detected_at_window"}


class ErrorBody(BaseModel):
    detail: str


class ValidationErrorBody(BaseModel):
    detail: list[dict[str, Any]] = Field(description="Each invalid field: loc, msg, type")
    message: str = Field(description="One line naming them")


# --- exceptions ------------------------------------------------------------------------------


class Resolution(BaseModel):
    decision: Decision
    reason: str
    correction: dict[str, FieldChange]
    resolver: str
    resolved_at: AwareDatetime
    time_to_resolve_seconds: float


class SuggestionRead(BaseModel):
    """A suggested decision from the verdict history the caller may see (outcomes/suggestions.py):
    advice only, it never resolves anything."""

    decision: Decision | None = Field(description="The suggested decision; null when the history is short or mixed")
    confidence: float | None = Field(description="(k + 1) / (n + 2): the suggested side's smoothed share")
    basis: str = Field(description="subject (this subject's own verdicts) or rule_and_client")
    verdicts: int = Field(description="Judged verdicts (confirmed, corrected, false_positive) in the evidence")
    flag_right: int = Field(description="Of them, confirmed or corrected")
    evidence: str = Field(
        description='In words, e.g. "9 of the last 10 bid_over_cap for tailspin were false positives"'
    )


class ExceptionRead(BaseModel):
    id: str = Field(description="The exception_id of the record that opened this exception")
    fingerprint: str
    kind: Kind
    rule_id: str
    severity: Severity
    source: str
    event_type: str | None
    subject: str
    client_id: str | None
    summary: str
    observed: dict[str, Any]
    threshold: dict[str, Any] | None
    expected: dict[str, Any] | None
    score: float | None
    event: dict[str, Any] | None
    event_ref: EventRef | None
    trimmed: list[str] | None = Field(
        default=None,
        description="Paths inside `event` whose long strings the detector cut; the full event is at event_ref",
    )
    impact: Impact | None = Field(
        default=None,
        description="The money at risk (amount, currency, basis) as the first record estimated it; null where the "
        "rule gives no estimate",
    )
    occurrences: int = Field(description="Firings grouped into this exception (sum of the records' counts)")
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    status: Status
    assignee: str | None
    snoozed_until: AwareDatetime | None
    sla_breach: str | None = Field(description="The last SLA breached: null, 'ack' or 'resolve'")
    queue: str = Field(description="The queue (team) it was routed to when it was created (the routes file)")
    silenced_by: str | None = Field(
        default=None,
        description="The id of the active silence holding it out of the on-call queue and out of notifications; "
        "null when none does",
    )
    release_deadline: AwareDatetime | None = Field(
        default=None,
        description="Approval items (kind approval): the last moment the release decision is useful (the post's "
        "scheduled time minus the review policy's margin); null otherwise",
    )
    deadline_escalated_at: AwareDatetime | None = Field(
        default=None, description="Approval items: when the sweeper escalated it for its deadline coming near"
    )
    resolution: Resolution | None = Field(
        description="The current final resolution; null until resolved, and while its blind second review is "
        "pending for anyone but its resolver"
    )
    second_review: str | None = Field(
        default=None,
        description="Its resolution's second review: null (none), pending, agreed, disagreed (a lead decides) or "
        "adjudicated",
    )
    resolution_count: int
    suggestion: SuggestionRead | None = Field(
        default=None,
        description="A suggested decision with its evidence, on GET /v1/exceptions/{id} of an unresolved exception; "
        "null in lists and once resolved",
    )
    version: int = Field(description="Bumped by every state change; also the ETag")
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def from_row(cls, row: ExceptionRow) -> ExceptionRead:
        resolution = None
        if row.status == Status.RESOLVED and row.decision and row.resolved_at:
            resolution = Resolution(
                decision=Decision(row.decision),
                reason=row.reason or "",
                correction={k: FieldChange.model_validate(v) for k, v in (row.correction or {}).items()},
                resolver=row.resolver or "",
                resolved_at=row.resolved_at,
                time_to_resolve_seconds=row.time_to_resolve_seconds or 0.0,
            )
        values = {name: getattr(row, name) for name in cls.model_fields if name not in ("resolution", "suggestion")}
        return cls(**values, resolution=blind.sealed(row, resolution))


class SilencedFilter(StrEnum):
    """The list's `silenced` filter: the on-call queue leaves silenced exceptions out."""

    FALSE = "false"
    TRUE = "true"
    ALL = "all"

    def as_filter(self) -> bool | None:
        return {SilencedFilter.FALSE: False, SilencedFilter.TRUE: True, SilencedFilter.ALL: None}[self]


class ExceptionPage(BaseModel):
    items: list[ExceptionRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class ClaimRequest(RequestBody):
    assignee: str | None = Field(default=None, min_length=1, max_length=255, description="Defaults to the token's name")


# A correction travels in the outcome on Kafka (1 MiB per message) and in the training data: it is
# what a human changed, field by field, never a copy of the event.
MAX_CORRECTION_FIELDS = 100
MAX_CORRECTION_BYTES = 64 * 1024
MAX_CORRECTION_DEPTH = 8  # levels of nesting inside one before/after value


def correction_problem(correction: dict[str, FieldChange]) -> str | None:
    """Why a correction is too big to record and publish, naming it; None when it fits."""
    if len(correction) > MAX_CORRECTION_FIELDS:
        return f"correction: at most {MAX_CORRECTION_FIELDS} fields (got {len(correction)})"
    for name, change in correction.items():
        for side in ("before", "after"):
            if value_depth(getattr(change, side)) > MAX_CORRECTION_DEPTH:
                return f"correction.{name}.{side}: nested deeper than {MAX_CORRECTION_DEPTH} levels"
    try:
        size = len(orjson.dumps({k: v.model_dump(mode="json") for k, v in correction.items()}))
    except (TypeError, orjson.JSONEncodeError):
        size = MAX_CORRECTION_BYTES + 1  # only a huge integer or a very deep value gets here
    if size > MAX_CORRECTION_BYTES:
        return f"correction: at most {MAX_CORRECTION_BYTES} bytes of JSON (got {size})"
    return None


def _check_resolution(decision: Decision, reason: str, correction: dict[str, FieldChange]) -> None:
    problem = correction_problem(correction) or resolution_problem(decision, reason, correction)
    if problem:
        raise PydanticCustomError("resolution_invalid", problem)


class ResolveRequest(RequestBody):
    decision: Decision
    reason: str = Reason
    correction: dict[str, FieldChange] = Field(
        default_factory=dict, description="What the human changed: {field: {before, after}}"
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        _check_resolution(self.decision, self.reason, self.correction)
        return self


class EscalateRequest(RequestBody):
    reason: str = Field(min_length=1, max_length=4000)


class SnoozeRequest(RequestBody):
    until: PlausibleTime = Field(description="In the future, at most LOOPGATE_MAX_SNOOZE_SECONDS (30 days) ahead")
    reason: str = Reason


def snooze_in_past(until: dt.datetime, now: dt.datetime) -> str | None:
    """Why a snooze ends too early, or None (checked by the route against the app's clock)."""
    return "until must be in the future" if until <= now else None


def snooze_too_long(until: dt.datetime, now: dt.datetime, max_seconds: float) -> str | None:
    """Why a snooze is longer than allowed (the SLA still runs while snoozed), or None."""
    if (until - now).total_seconds() > max_seconds:
        latest = (now + dt.timedelta(seconds=max_seconds)).isoformat()
        return f"until: at most {max_seconds:g} seconds ahead (LOOPGATE_MAX_SNOOZE_SECONDS), i.e. before {latest}"
    return None


class ReopenRequest(RequestBody):
    reason: str = Field(min_length=1, max_length=4000)


class ExceptionBatch(BaseModel):
    """A batched create (documents the body: the route validates each record on its own)."""

    records: list[ExceptionCreate] = Field(
        description="At most LOOPGATE_BATCH_MAX_RECORDS records (and LOOPGATE_API_MAX_BODY_BYTES in all), "
        "stored in this order"
    )


class ExceptionCreated(BaseModel):
    """What a create answers, whoever sends the record (the service role may not read exceptions):
    which exception the record counts for, how, and its version; nothing an operator wrote. The
    exception itself is at the answer's Location, for a role that may read it."""

    id: str = Field(description="The exception this record opened, counts for (grouped), or was received for before")
    result: Literal["created", "grouped", "duplicate"] = Field(description="The same as the Loopgate-Result header")
    version: int = Field(description="The exception's version (its ETag)")


class BatchItemResult(BaseModel):
    status: int = Field(
        description="What a single create of this record would answer: 201 created, 200 duplicate or "
        "grouped, or the record's own error (400, 409, 422)"
    )
    result: Literal["created", "grouped", "duplicate"] | None = Field(
        description="The Loopgate-Result a single create would give; null for an error"
    )
    body: ExceptionCreated | dict[str, Any] = Field(
        description="The body a single create would answer: its id, result and version, or the error "
        "({detail, message})"
    )


class BatchResult(BaseModel):
    results: list[BatchItemResult] = Field(description="One per record, in the request's order")


class BulkResolveRequest(RequestBody):
    fingerprint: str | None = Field(default=None, min_length=1, max_length=512)
    ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    versions: dict[str, int] | None = Field(
        default=None,
        max_length=500,
        description="With ids: the version (ETag) each exception must still have, checked per exception as "
        "If-Match is (another version: that one fails with 412, the rest go on)",
    )
    decision: Decision
    reason: str = Reason
    correction: dict[str, FieldChange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.fingerprint is None) == (self.ids is None):
            raise PydanticCustomError("selector", "give exactly one of fingerprint or ids")
        if self.versions is not None and (self.ids is None or not set(self.versions) <= set(self.ids)):
            raise PydanticCustomError("versions", "versions: only for ids, and only ids the request lists")
        _check_resolution(self.decision, self.reason, self.correction)
        return self


class ExceptionFilter(RequestBody):
    """The list's filters, for work by filter."""

    status: list[Status] = Field(default_factory=list, description="Any of these (the action's own rule applies too)")
    severity: list[Severity] = Field(default_factory=list)
    source: str | None = Field(default=None, max_length=255)
    rule_id: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, max_length=255)
    assignee: str | None = Field(default=None, max_length=255)
    detected_after: PlausibleTime | None = None
    detected_before: PlausibleTime | None = None

    @model_validator(mode="after")
    def _time_range(self) -> Self:
        # Whether it narrows enough is the route's question (bulk_work.narrows, `all`, the role).
        if self.detected_after and self.detected_before and self.detected_after >= self.detected_before:
            raise PydanticCustomError("time_range", "detected_after must be before detected_before")
        return self


class BulkWorkRequest(RequestBody):
    action: Literal["resolve", "snooze", "claim"]
    filter: ExceptionFilter
    all: bool = Field(
        default=False,
        description="Required (and admin only) when the filter names nothing beyond status and time: it then "
        "matches every exception",
    )
    dry_run: bool = Field(default=False, description="Only count the exceptions the action would apply to")
    decision: Decision | None = Field(default=None, description="resolve: the decision")
    reason: str = Reason
    correction: dict[str, FieldChange] = Field(default_factory=dict)
    until: PlausibleTime | None = Field(default=None, description="snooze: until when")
    assignee: str | None = Field(default=None, min_length=1, max_length=255, description="claim: defaults to you")

    @model_validator(mode="after")
    def _what_the_action_needs(self) -> Self:
        if self.action == "resolve":
            if self.decision is None:
                raise PydanticCustomError("decision_missing", "resolve needs a decision")
            _check_resolution(self.decision, self.reason, self.correction)
        if self.action == "snooze" and self.until is None:
            raise PydanticCustomError("until_missing", "snooze needs until")
        return self


class BulkWorkResult(BaseModel):
    action: str
    dry_run: bool
    matched: int = Field(description="Exceptions matching the filter whose status allows the action")
    changed: int = Field(description="Exceptions changed (0 in a dry run)")
    skipped: int = Field(description="Matched but left as they were (a claim of what the assignee already holds)")
    max_rows: int | None = Field(
        default=None,
        description="The most one request may change (LOOPGATE_BULK_MAX_ROWS); a filter matching more is refused",
    )


class BulkFailure(BaseModel):
    id: str
    status_code: int
    detail: str


class BulkResolveResult(BaseModel):
    resolved: list[ExceptionRead]
    failed: list[BulkFailure]


class HistoryEvent(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: AwareDatetime
    actor: str
    action: str
    from_status: Status | None
    to_status: Status | None
    fields: dict[str, Any]

    @classmethod
    def from_row(cls, row: ExceptionEventRow) -> HistoryEvent:
        return cls.model_validate(row)


class History(BaseModel):
    exception_id: str
    items: list[HistoryEvent] = Field(description="A page of the history, oldest first")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the events after this page; null: no more events now"
    )


# --- tokens ----------------------------------------------------------------------------------


class TokenCreate(RequestBody):
    name: str = Field(
        min_length=1, max_length=64, description="Who uses it: unique among active tokens; `system:` is reserved"
    )
    role: Role
    clients: list[str] | None = Field(
        default=None,
        max_length=100,
        description="The clients it may see (none: agency-wide); a reviewer token must name its clients",
    )
    expires_at: AwareDatetime | None = Field(default=None, description="When it stops working (none: never)")


class TokenRotate(RequestBody):
    grace_seconds: int = Field(
        default=3600, ge=0, le=30 * 86400, description="How long the old secret keeps working (0: not at all)"
    )


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    role: Role
    clients: list[str] | None = Field(description="The clients it may see; null: agency-wide")
    created_at: AwareDatetime
    expires_at: AwareDatetime | None
    last_used_at: AwareDatetime | None
    revoked_at: AwareDatetime | None
    previous_valid_until: AwareDatetime | None = Field(description="Until when the secret before a rotation works")

    @classmethod
    def from_row(cls, row: TokenRow) -> TokenRead:
        return cls.model_validate(row)


class TokenCreated(TokenRead):
    token: str = Field(description="The secret: shown once, stored only as its SHA-256 hash")


class TokenList(BaseModel):
    items: list[TokenRead]


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: AwareDatetime
    actor: str
    action: str = Field(description="token.created, token.rotated or token.revoked")
    target: str = Field(description="The token's id")
    detail: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null: no more")


class Whoami(BaseModel):
    name: str
    role: Role
    scope: str = Field(description="What it may see, in words")
    clients: list[str] | None
    queues: list[str] | None
    expires_at: AwareDatetime | None


# --- silences --------------------------------------------------------------------------------


class SilenceCreate(RequestBody):
    """A silence: every matcher given must hold (exact values). At least one matcher, or
    match_all: true to silence everything on purpose."""

    rule_id: str | None = Field(default=None, min_length=1, max_length=64)
    client_id: str | None = Field(default=None, min_length=1, max_length=255)
    subject: str | None = Field(default=None, min_length=1, max_length=255)
    source: str | None = Field(default=None, min_length=1, max_length=255)
    severity: Severity | None = None
    match_all: bool = Field(default=False, description="Silence every exception (no matcher may be given then)")
    starts_at: PlausibleTime | None = Field(default=None, description="Default: now")
    ends_at: PlausibleTime = Field(
        description="After the start and in the future, at most LOOPGATE_MAX_SILENCE_SECONDS (90 days) after it"
    )
    comment: str = Field(min_length=1, max_length=4000, description="Why: what an operator reading it needs")

    @model_validator(mode="after")
    def _matchers(self) -> Self:
        given = [name for name in ("rule_id", "client_id", "subject", "source", "severity") if getattr(self, name)]
        if not given and not self.match_all:
            raise PydanticCustomError(
                "silence_matchers",
                "give at least one matcher (rule_id, client_id, subject, source, severity), or match_all: true "
                "to silence every exception",
            )
        if given and self.match_all:
            raise PydanticCustomError("silence_matchers", f"match_all: true takes no matchers (got {', '.join(given)})")
        if not self.comment.strip():
            raise PydanticCustomError("silence_comment", "comment: must not be blank")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise PydanticCustomError("silence_times", "ends_at: must be after starts_at")
        return self


def silence_times_problem(
    starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime, max_seconds: float
) -> tuple[str, str] | None:
    """(field, why) when a silence's times are not allowed at `now`, or None."""
    if ends_at <= now:
        return "ends_at", "must be in the future"
    if ends_at <= starts_at:
        return "ends_at", "must be after starts_at"
    if (ends_at - starts_at).total_seconds() > max_seconds:
        return "ends_at", f"at most {max_seconds:.0f} seconds after starts_at (LOOPGATE_MAX_SILENCE_SECONDS)"
    if (starts_at - now).total_seconds() > max_seconds:
        return "starts_at", f"at most {max_seconds:.0f} seconds ahead (LOOPGATE_MAX_SILENCE_SECONDS)"
    return None


class SilenceRead(BaseModel):
    id: str
    rule_id: str | None
    client_id: str | None
    subject: str | None
    source: str | None
    severity: Severity | None
    match_all: bool
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="When it ends (moved to the expiry time when expired early)")
    created_by: str = Field(description="The name of the token that made it")
    comment: str
    created_at: AwareDatetime
    expired_by: str | None = Field(description="Who expired it early; null otherwise")
    expired_at: AwareDatetime | None
    state: Literal["pending", "active", "expired"]
    ends_in_seconds: float | None = Field(description="Seconds until it ends; null once it has")
    expiring_soon: bool = Field(
        description="Active and ending within LOOPGATE_SILENCE_EXPIRING_SOON_SECONDS: what it holds returns soon"
    )
    silenced: int = Field(description="Exceptions it holds out of the queue now")


class SilencePage(BaseModel):
    items: list[SilenceRead]


class SilenceEvent(BaseModel):
    at: AwareDatetime
    actor: str
    action: str = Field(description="created, expired (by a person), started or ended (by the system)")
    fields: dict[str, Any]


class SilenceHistory(BaseModel):
    silence_id: str
    events: list[SilenceEvent]
