"""SQLAlchemy tables of the resolution API. Alembic migrations (migrations/versions) create them;
`tests/integration/test_api_migrations.py` checks the two never drift apart."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset, so it stores UTC
    without one and this type puts it back on read)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


RESOLVED = "resolved"

# The rows each of the sweeper's deadlines can still fall on (migration 0012; sweeps/deadlines.py reads them
# with these very words, so both databases see that its query implies the index's condition).
ACK_DUE = "status = 'open' AND sla_breach IS NULL"
RESOLVE_DUE = "status IN ('open', 'claimed', 'snoozed') AND (sla_breach IS NULL OR sla_breach = 'ack')"
SNOOZE_DUE = "status = 'snoozed'"


class ExceptionRow(Base):
    """One exception: the first record that opened it, plus every grouped occurrence's count."""

    __tablename__ = "exceptions"
    __table_args__ = (
        # At most one unresolved exception per fingerprint: concurrent creates cannot open two.
        sa.Index(
            "uq_exceptions_unresolved_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=sa.text("status <> 'resolved'"),
            postgresql_where=sa.text("status <> 'resolved'"),
        ),
        # The list's sort key, and each filter column ahead of it (pages read in order from the index).
        sa.Index("ix_exceptions_created_at_id", "created_at", "id"),
        *(
            sa.Index(f"ix_exceptions_{column}_created_at_id", column, "created_at", "id")
            for column in ("status", "severity", "rule_id", "source", "client_id", "assignee", "first_seen")
        ),
        # Verdict statistics read a window of resolutions; the training-data export pages in this order.
        sa.Index("ix_exceptions_resolved_at_id", "resolved_at", "id"),
        # The list's other orders (sort=severity, sort=impact), read one status at a time (store.py).
        sa.Index(
            "ix_exceptions_status_severity_impact", "status", "severity_rank", "impact_amount", "created_at", "id"
        ),
        sa.Index("ix_exceptions_status_impact", "status", "impact_amount", "created_at", "id"),
        # A queue's list (routing.py), newest first.
        sa.Index("ix_exceptions_queue_created_at_id", "queue", "created_at", "id"),
        # The default list (silenced ones left out) reads the unsilenced only, however many a silence holds.
        sa.Index(
            "ix_exceptions_unsilenced_status_created_at_id",
            "status",
            "created_at",
            "id",
            sqlite_where=sa.text("silenced_by IS NULL"),
            postgresql_where=sa.text("silenced_by IS NULL"),
        ),
        # A silence that ends releases the exceptions it holds (silencing.py). Those rows only: as a
        # plain index it was taken for the default list's `silenced_by IS NULL` (migration 0009).
        sa.Index(
            "ix_exceptions_silenced_by",
            "silenced_by",
            sqlite_where=sa.text("silenced_by IS NOT NULL"),
            postgresql_where=sa.text("silenced_by IS NOT NULL"),
        ),
        # The sweeper's deadlines: only the rows a deadline can still fall on, in its order (0012).
        *(
            sa.Index(name, *columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))
            for name, columns, where in (
                ("ix_exceptions_ack_due", ("status", "severity", "first_seen"), ACK_DUE),
                ("ix_exceptions_resolve_due", ("status", "severity", "first_seen"), RESOLVE_DUE),
                ("ix_exceptions_snooze_due", ("status", "snoozed_until"), SNOOZE_DUE),
            )
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(512))
    kind: Mapped[str] = mapped_column(sa.String(32))
    rule_id: Mapped[str] = mapped_column(sa.String(64))
    severity: Mapped[str] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(255))
    event_type: Mapped[str | None] = mapped_column(sa.String(255))
    subject: Mapped[str] = mapped_column(sa.String(255))
    client_id: Mapped[str | None] = mapped_column(sa.String(255))
    summary: Mapped[str] = mapped_column(sa.String(1000))
    observed: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    threshold: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    expected: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    score: Mapped[float | None] = mapped_column(sa.Float)
    event: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    event_ref: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # JSON paths inside `event` whose long strings the detector cut (contract v2 `trimmed`).
    trimmed: Mapped[list[str] | None] = mapped_column(sa.JSON)
    # Contract v2 `impact` (amount, currency, basis), and its amount alone to filter and sort on
    # (compared as is, whatever the currency).
    impact: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    impact_amount: Mapped[float | None] = mapped_column(sa.Float)
    # The severity as a number to sort on: info 0 ... critical 4 (Severity.rank).
    severity_rank: Mapped[int] = mapped_column(sa.Integer)
    # The queue (team) it was routed to when it was created (routing.py).
    queue: Mapped[str] = mapped_column(sa.String(255))
    # The active silence holding it out of the queue and out of notifications, or None (silencing.py
    # keeps it up to date: at create, when a silence is made or expired, and when one starts or ends).
    silenced_by: Mapped[str | None] = mapped_column(sa.String(32))

    occurrences: Mapped[int] = mapped_column(sa.BigInteger)
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    status: Mapped[str] = mapped_column(sa.String(16))
    assignee: Mapped[str | None] = mapped_column(sa.String(255))
    snoozed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # None, "ack" or "resolve": the last SLA this exception breached (each escalates once).
    sla_breach: Mapped[str | None] = mapped_column(sa.String(16))

    decision: Mapped[str | None] = mapped_column(sa.String(32))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    correction: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    resolver: Mapped[str | None] = mapped_column(sa.String(255), index=True)  # an operator's first N (review/)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    time_to_resolve_seconds: Mapped[float | None] = mapped_column(sa.Float)
    # How many times it was finally resolved (more than once only after an admin reopen).
    resolution_count: Mapped[int] = mapped_column(sa.Integer)
    # The last escalation level whose receivers were told (notifications/escalation.py); 0: none.
    escalation_level: Mapped[int] = mapped_column(sa.Integer, server_default="0")

    # Optimistic concurrency: bumped by every state change, returned as the ETag.
    version: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The W3C traceparent of the request that created it (tracing on): its resolution continues that trace.
    traceparent: Mapped[str | None] = mapped_column(sa.String(55))
    # Its resolution's second review (review/): None, "pending" (the decision is sealed from all but its
    # resolver), "agreed", "disagreed" or "adjudicated".
    second_review: Mapped[str | None] = mapped_column(sa.String(16))


class OccurrenceRow(Base):
    """Every exception record received, keyed by its exception_id: a redelivery never counts twice."""

    __tablename__ = "occurrences"

    record_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"), index=True)
    occurrences: Mapped[int] = mapped_column(sa.Integer)
    detected_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ExceptionEventRow(Base):
    """History: one row per change of an exception (who, when, from which state to which)."""

    __tablename__ = "exception_events"
    # One exception's history in id order, a page at a time (migration 0012).
    __table_args__ = (sa.Index("ix_exception_events_exception_id_id", "exception_id", "id"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str | None] = mapped_column(sa.String(16))
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class OutboxRow(Base):
    """An outcome CloudEvent committed with its resolution, waiting for the relay to publish it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_pending", "sent_at", "set_aside_at", "id"),
        sa.Index(
            "ix_outbox_set_aside",
            "id",
            sqlite_where=sa.text("set_aside_at IS NOT NULL"),
            postgresql_where=sa.text("set_aside_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    outcome_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"), index=True)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set when the outcome can never be published as it is (e.g. too large for Kafka): the relay
    # skips it and publishes the ones behind it; the reason says why.
    set_aside_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    set_aside_reason: Mapped[str | None] = mapped_column(sa.Text)
    traceparent: Mapped[str | None] = mapped_column(sa.String(55))  # the outcome's span (tracing on)


class TokenRow(Base):
    """A bearer token: only its SHA-256 hash is stored."""

    __tablename__ = "tokens"
    __table_args__ = (
        # Two active tokens never share a name: the name is the actor in history and outcomes.
        sa.Index(
            "uq_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The clients it may see (None: agency-wide); a reviewer's is never None.
    clients: Mapped[list[str] | None] = mapped_column(sa.JSON)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # After a rotation, the previous secret's hash stays valid until previous_valid_until.
    previous_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    previous_valid_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ConsoleSessionRow(Base):
    """A signed-in console browser: only the hash of its cookie's random id is stored."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # SHA-256 of the cookie's value
    # Opened with a token (ends when it is revoked or expires), or by single sign-on (None).
    token_id: Mapped[str | None] = mapped_column(sa.String(32), sa.ForeignKey("tokens.id"), index=True)
    # Who it is, when opened by single sign-on: name, role, clients (None: agency-wide).
    name: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[str | None] = mapped_column(sa.String(16))
    clients: Mapped[list[str] | None] = mapped_column(sa.JSON)
    csrf: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SsoSignInRow(Base):
    """A single sign-on under way: sent to the provider, not yet back. Taken (deleted) by the one
    callback that brings its state back, so a state works once; only the state's hash is stored."""

    __tablename__ = "console_sso_sign_ins"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # SHA-256 of the state
    nonce: Mapped[str] = mapped_column(sa.String(64))
    code_verifier: Mapped[str] = mapped_column(sa.String(128))  # PKCE: only this server and the provider see it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AuditRow(Base):
    """Who changed who may do what: token creation, rotation, revocation. Never deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str] = mapped_column(sa.String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class SilenceRow(Base):
    """A silence: exceptions matching all its matchers (or every one, with match_all) are kept out
    of the queue and out of notifications from starts_at until ends_at (moved to the expiry time
    when it is expired early). Never deleted: the audit trail refers to it."""

    __tablename__ = "silences"
    __table_args__ = (sa.Index("ix_silences_applied_ends_at", "applied", "ends_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    rule_id: Mapped[str | None] = mapped_column(sa.String(64))
    client_id: Mapped[str | None] = mapped_column(sa.String(255))
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    source: Mapped[str | None] = mapped_column(sa.String(255))
    severity: Mapped[str | None] = mapped_column(sa.String(16))
    match_all: Mapped[bool] = mapped_column(sa.Boolean)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(sa.String(255))
    comment: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expired_by: Mapped[str | None] = mapped_column(sa.String(255))
    expired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The state last applied to the exceptions ("pending", "active", "expired"): the sweeper applies
    # a silence's start and end when its time comes, once.
    applied: Mapped[str] = mapped_column(sa.String(16))


class SilenceEventRow(Base):
    """The silences' audit trail: one row per action (created, expired, started, ended), who and when."""

    __tablename__ = "silence_events"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    silence_id: Mapped[str] = mapped_column(sa.ForeignKey("silences.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(sa.String(255))
    action: Mapped[str] = mapped_column(sa.String(32))
    fields: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class NotificationEventRow(Base):
    """Something on-call must hear of (opened, escalated, sla_breached, resolved, an escalation
    level), committed with the change itself; the notification relay turns it into one
    NotificationRow per receiver the configuration names (notifications/)."""

    __tablename__ = "notification_events"
    __table_args__ = (
        sa.UniqueConstraint("exception_id", "key", name="uq_notification_events_exception_key"),
        sa.Index("ix_notification_events_pending", "expanded_at", "set_aside_at", "id"),
        sa.Index(
            "ix_notification_events_set_aside",
            "id",
            sqlite_where=sa.text("set_aside_at IS NOT NULL"),
            postgresql_where=sa.text("set_aside_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"), index=True)
    event: Mapped[str] = mapped_column(sa.String(32))
    # Unique per exception: "opened", "escalated:<version>", "sla_breached:<sla>:<n>", "resolved:<n>", "level:<n>".
    key: Mapped[str] = mapped_column(sa.String(64))
    level: Mapped[int | None] = mapped_column(sa.Integer)
    receivers: Mapped[list[str] | None] = mapped_column(sa.JSON)  # an escalation level's own receivers
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expanded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Set when it cannot be turned into notifications at all (a malformed row): the relay expands
    # the events behind it; the reason says why.
    set_aside_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    set_aside_reason: Mapped[str | None] = mapped_column(sa.Text)


# Notifications set aside because they could not be rendered or sent (what an admin lists).
NOTIFICATION_FAILED_SQL = "set_aside_at IS NOT NULL AND set_aside_reason <> 'rate_limited'"


class NotificationRow(Base):
    """One notification to one receiver, with its stable id, waiting for the relay to send it."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_pending", "receiver", "sent_at", "set_aside_at", "id"),
        sa.Index("ix_notifications_flapping", "fingerprint", "receiver", "created_at"),
        sa.Index(
            "ix_notifications_failed",
            "id",
            sqlite_where=sa.text(NOTIFICATION_FAILED_SQL),
            postgresql_where=sa.text(NOTIFICATION_FAILED_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"), index=True)
    event: Mapped[str] = mapped_column(sa.String(32))
    level: Mapped[int | None] = mapped_column(sa.Integer)
    receiver: Mapped[str] = mapped_column(sa.String(64))
    receiver_kind: Mapped[str] = mapped_column(sa.String(16))
    fingerprint: Mapped[str] = mapped_column(sa.String(512))
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Never sent: rate limited (a flapping fingerprint), a notification that could not be rendered
    # or sent as it is, or a receiver that refused it for good.
    set_aside_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    set_aside_reason: Mapped[str | None] = mapped_column(sa.Text)


class SecondReviewRow(Base):
    """One resolution chosen for a blind second review (review/): the first decision, sealed from the
    second reviewer until they decide; theirs; and, when the two differ, the lead queue's final one.
    status: pending -> agreed | disagreed -> adjudicated."""

    __tablename__ = "second_reviews"
    __table_args__ = (
        sa.UniqueConstraint("exception_id", "resolution_count", name="uq_second_reviews_resolution"),
        sa.Index("ix_second_reviews_status_created_at", "status", "created_at", "id"),
        sa.Index("ix_second_reviews_reviewed_at", "reviewed_at"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(sa.ForeignKey("exceptions.id"), index=True)
    resolution_count: Mapped[int] = mapped_column(sa.Integer)
    rule_id: Mapped[str] = mapped_column(sa.String(64))
    queue: Mapped[str] = mapped_column(sa.String(255))
    client_id: Mapped[str | None] = mapped_column(sa.String(255))
    chosen_by: Mapped[str] = mapped_column(sa.String(32))  # "first_resolutions" or "share"
    status: Mapped[str] = mapped_column(sa.String(16))
    first_resolver: Mapped[str] = mapped_column(sa.String(255))
    first_decision: Mapped[str] = mapped_column(sa.String(32))
    reviewer: Mapped[str | None] = mapped_column(sa.String(255))
    second_decision: Mapped[str | None] = mapped_column(sa.String(32))
    second_reason: Mapped[str | None] = mapped_column(sa.Text)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lead_exception_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    final_decision: Mapped[str | None] = mapped_column(sa.String(32))
    adjudicated_by: Mapped[str | None] = mapped_column(sa.String(255))
    adjudicated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
