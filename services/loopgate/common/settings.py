"""Typed settings for every service: environment variables with the `LOOPGATE_` prefix.

Defaults work locally with nothing set (broker on 127.0.0.1:9092, SQLite file in .run/).
Read when a service starts, through the cached `get_settings()`, never at import.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loopgate.common.secrets import inline_or_file
from loopgate_schemas import topics
from loopgate_schemas.exceptions import Severity


class Sla(BaseModel):
    """Seconds from first detection within which an exception must be claimed and resolved."""

    ack_seconds: float = Field(gt=0)
    resolve_seconds: float = Field(gt=0)


_HOUR = 3600.0
DEFAULT_SLAS: dict[Severity, Sla] = {
    Severity.CRITICAL: Sla(ack_seconds=15 * 60, resolve_seconds=2 * _HOUR),
    Severity.HIGH: Sla(ack_seconds=_HOUR, resolve_seconds=8 * _HOUR),
    Severity.MEDIUM: Sla(ack_seconds=4 * _HOUR, resolve_seconds=24 * _HOUR),
    Severity.LOW: Sla(ack_seconds=24 * _HOUR, resolve_seconds=7 * 24 * _HOUR),
    Severity.INFO: Sla(ack_seconds=24 * _HOUR, resolve_seconds=7 * 24 * _HOUR),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOPGATE_", env_file=None, extra="ignore")

    # --- Kafka ---
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, `host:port[,host:port]`."
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic and consumer group (isolates test runs on a shared broker); "
        "empty in production, where the contract's topic names are used as they are.",
    )
    upstream_partitions: int = Field(
        default=6,
        ge=1,
        description="Partitions of the upstream topics when Loopgate creates them; bounds the detector workers.",
    )
    exceptions_partitions: int = Field(
        default=6, ge=1, description="Partitions of `exceptions` when Loopgate creates it."
    )
    outcomes_partitions: int = Field(
        default=3, ge=1, description="Partitions of `exception-outcomes` when Loopgate creates it."
    )
    dlq_partitions: int = Field(default=3, ge=1, description="Partitions of `events.dlq` when Loopgate creates it.")
    replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of every topic Loopgate creates (its own topics and the detector's changelogs); "
        "3 on a production cluster.",
    )
    min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="`min.insync.replicas` of the topics Loopgate creates: with producers at `acks=all`, a write "
        "is acknowledged once this many replicas have it (2 with a replication factor of 3).",
    )
    kafka_security_protocol: str = Field(
        default="PLAINTEXT",
        description="`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`; used by every Kafka client "
        "(detector, dispatcher, outbox relay, CLI, tools).",
    )
    kafka_sasl_mechanism: str = Field(
        default="",
        description="`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; required with a `SASL_*` protocol.",
    )
    kafka_sasl_username: str = Field(default="", description="SASL user; required with a `SASL_*` protocol.")
    kafka_sasl_username_file: Path | None = Field(
        default=None, description="A file holding the SASL user (instead of `LOOPGATE_KAFKA_SASL_USERNAME`)."
    )
    kafka_sasl_password: str = Field(default="", description="SASL password; prefer the `_FILE` variant.")
    kafka_sasl_password_file: Path | None = Field(
        default=None,
        description="A file holding the SASL password (a mounted secret; one trailing newline is ignored).",
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA(s) that signed the brokers' certificates (with `SSL`/`SASL_SSL`); "
        "unset: the system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS; needs `LOOPGATE_KAFKA_SSL_KEYFILE`."
    )
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Private key (PEM) of the client certificate.")
    kafka_ssl_key_password: str = Field(default="", description="Password of an encrypted client key.")
    kafka_ssl_key_password_file: Path | None = Field(
        default=None, description="A file holding the client key's password."
    )
    kafka_ssl_check_hostname: bool = Field(
        default=True,
        description="Check that each broker's certificate names the host connected to; turn off only for a "
        "broker reached by an address its certificate does not list.",
    )
    kafka_connect_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a starting service waits for an unreachable broker before it gives up; a broker "
        "that answers but refuses the credentials or certificate fails the start at once.",
    )

    # --- detector ---
    detector_app_id: str = Field(
        default="loopgate-detector", description="The detector's consumer group and the prefix of its changelog topics."
    )
    detection_config: Path | None = Field(
        default=None, description="Detection thresholds (TOML); unset: the packaged `detection.toml`."
    )
    detector_metrics_port: int = Field(
        default=9101, description="Port of the detector's `/metrics`, `/healthz` and `/readyz`."
    )
    detector_data_dir: Path = Field(default=Path(".run/detector"), description="The detector's faust data directory.")
    max_event_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        description="Larger upstream messages are dead-lettered as `too_large`; above the broker's ~1 MiB "
        "limit, so a valid event is never rejected for its size alone (contract).",
    )
    detector_session_timeout_seconds: float = Field(
        default=60.0,
        ge=6.0,
        description="How long a worker that died without leaving holds its partitions before the group gives "
        "them to the others.",
    )
    detector_standby_replicas: int = Field(
        default=0,
        ge=0,
        description="Standby copies of each baseline-table partition kept warm by other detector workers, so a "
        "worker's loss does not wait for a rebuild from the changelog.",
    )

    detector_batch_max_records: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Most upstream records the detector handles as one batch (and fetches at a time): a "
        "rebalance or a shutdown waits for at most one batch.",
    )
    detector_batch_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        description="Most bytes of upstream messages in one detector batch; a single larger message is a "
        "batch of its own.",
    )

    # --- dispatcher ---
    dispatcher_group: str = Field(default="loopgate-dispatcher", description="The dispatcher's consumer group.")
    dispatcher_metrics_port: int = Field(
        default=9102, description="Port of the dispatcher's `/metrics`, `/healthz` and `/readyz`."
    )
    api_url: str = Field(default="http://127.0.0.1:8000", description="Where the dispatcher finds the resolution API.")
    api_token: str = Field(
        default="",
        description="The dispatcher's bearer token: a `service` token from "
        "`loopgate api tokens create --role service`; prefer the `_FILE` variant.",
    )
    api_token_file: Path | None = Field(
        default=None,
        description="A file holding the dispatcher's token (a mounted secret). Read again until it holds one: "
        "a missing or empty file keeps the dispatcher up, holding every record and not ready.",
    )
    dispatch_concurrency: int = Field(default=32, ge=1, description="Records the dispatcher posts at once.")
    retry_initial_seconds: float = Field(default=0.2, gt=0, description="First wait before the dispatcher retries.")
    retry_max_seconds: float = Field(default=10.0, gt=0, description="Longest wait between the dispatcher's retries.")

    # --- resolution API ---
    database_url: str = Field(
        default="sqlite+aiosqlite:///.run/loopgate.db",
        description="The API's store: `sqlite+aiosqlite:///file.db` or `postgresql+asyncpg://user:pass@host/db`; "
        "with a password in it, prefer the `_FILE` variant.",
    )
    database_url_file: Path | None = Field(
        default=None,
        description="A file holding the database URL (a mounted secret), read when a service starts; "
        "instead of `LOOPGATE_DATABASE_URL`, never with it.",
    )
    database_migrate_on_start: bool = Field(
        default=True,
        description="The API (and `loopgate api tokens`) applies missing migrations when it starts. False where "
        "its database role may only read and write rows (production): `loopgate api migrate --grant-to ROLE`, "
        "run as the schema's owner, migrates and grants; the API then waits up to 30 s for the schema to be at "
        "head and refuses to start, saying so, if it is not.",
    )
    api_host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    api_port: int = Field(default=8000, description="Port the API listens on.")
    console_secure_cookie: bool = Field(
        default=True,
        description="The console's sign-in cookie is sent over HTTPS only; false only to use the console over plain "
        "http on one's own machine (`make demo`).",
    )
    console_session_idle_seconds: float = Field(
        default=2 * 3600,
        ge=60,
        le=7 * 86400,
        description="A console session unused this long ends (sign in again).",
    )
    console_session_max_seconds: float = Field(
        default=12 * 3600,
        ge=60,
        le=30 * 86400,
        description="A console session ends this long after sign-in, used or not (one on-call shift).",
    )
    # --- console single sign-on (OpenID Connect; README "Single sign-on") ---
    sso_issuer: str = Field(
        default="",
        description="The OpenID provider's issuer URL (its discovery document is `<this>/.well-known/"
        "openid-configuration`); https, or http on 127.0.0.1/localhost only. Empty: no single sign-on, tokens only.",
    )
    sso_provider_name: str = Field(
        default="",
        max_length=64,
        description='Shown on the sign-in button ("Sign in with ..."); empty: the issuer\'s host.',
    )
    sso_client_id: str = Field(default="", description="The console's client id at the provider.")
    sso_client_secret: SecretStr = Field(
        default=SecretStr(""), description="The console's client secret; prefer the `_FILE` variant."
    )
    sso_client_secret_file: Path | None = Field(
        default=None,
        description="A file holding the client secret (a mounted secret; one trailing newline is ignored).",
    )
    sso_redirect_base: str = Field(
        default="",
        description="The console's public URL as browsers reach it (the provider sends them back to "
        "`<this>/console/sso/callback`, which must be registered with it); empty: `LOOPGATE_PUBLIC_URL`.",
    )
    sso_mapping_file: Path | None = Field(
        default=None,
        description="Which groups or claims become which role and clients (TOML, see "
        "`deploy/sso-mapping.example.toml`); required with `LOOPGATE_SSO_ISSUER`. Read when the API starts: an "
        "unknown key, role or client refuses to start, naming it.",
    )
    sso_scopes: str = Field(
        default="openid profile email", description="The scopes the console asks for (must include `openid`)."
    )
    sso_sign_in_seconds: float = Field(
        default=600.0,
        ge=30,
        le=3600,
        description="How long a person has at the provider's login page; a sign-in that comes back later, or a "
        "second time, is refused.",
    )
    outbox_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the outbox relay looks for outcomes to publish (it also wakes on each).",
    )
    sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often snoozes that ran out are woken and SLAs are checked."
    )
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A verified token is trusted this long without a database read (0: every request reads); "
        "a revocation through another process takes effect within it.",
    )
    slas: dict[Severity, Sla] = Field(
        default_factory=lambda: dict(DEFAULT_SLAS),
        description='Ack and resolve deadlines per severity, JSON, e.g. `{"critical": {"ack_seconds": 600, '
        '"resolve_seconds": 3600}}`; a breach escalates. Left out: critical 15 min / 2 h, high 1 h / 8 h, '
        "medium 4 h / 24 h, low and info 24 h / 7 days.",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Request bodies larger than this are refused with 413 before they are read, parsed or "
        "authenticated (a 512 KiB exception record fits).",
    )
    batch_max_records: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Records in one batched create (`POST /v1/exceptions/batch`): the API refuses more, and the "
        "dispatcher sends at most this many per request (and at most `LOOPGATE_API_MAX_BODY_BYTES`).",
    )
    retention_resolved_seconds: float = Field(
        default=180 * 24 * _HOUR,
        ge=0,
        description="Resolved exceptions (with their history, occurrences and outcomes) resolved longer ago than "
        "this are deleted by the API's retention job; 0 keeps them for ever. A record redelivered after its "
        "exception is deleted opens a new one.",
    )
    retention_sent_outbox_seconds: float = Field(
        default=7 * 24 * _HOUR,
        ge=0,
        description="Outcomes published longer ago than this leave the outbox table (they are on "
        "`exception-outcomes`); 0 keeps them.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the retention job looks for rows to delete."
    )
    retention_batch_rows: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Exceptions (or outbox rows) the retention job deletes per transaction, so it never holds "
        "the database for long.",
    )
    max_snooze_seconds: float = Field(
        default=30 * 24 * _HOUR,
        gt=0,
        le=365 * 24 * _HOUR,
        description="The longest snooze an operator may ask for; SLA deadlines still apply while snoozed.",
    )
    routes_file: Path | None = Field(
        default=None,
        description="Routing of exceptions to queues (TOML, see `routes.toml`); unset: the packaged `routes.toml`. "
        "Read when the API starts: an unknown key or a bad value refuses to start, naming it.",
    )
    review_file: Path | None = Field(
        default=None,
        description="The second-review policy (TOML, see `review.toml`): which resolutions a second person "
        "re-reviews blind, and the lead queue of disagreements; unset: the packaged `review.toml` (reviews nothing). "
        "Read when the API starts: an unknown key or a bad value refuses to start, naming it.",
    )
    max_silence_seconds: float = Field(
        default=90 * 24 * _HOUR,
        gt=0,
        le=365 * 24 * _HOUR,
        description="The longest silence an operator may make (from its start to its end), and how far ahead it "
        "may start.",
    )
    silence_expiring_soon_seconds: float = Field(
        default=_HOUR,
        ge=0,
        description="An active silence ending within this long is shown as `expiring_soon`.",
    )
    api_shutdown_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Stopping the API takes at most about this long, even while Kafka or the database does not answer.",
    )
    export_page_rows: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Rows the training-data export (`GET /v1/export/training-data`) reads per page: each page is one "
        "short read, so its memory stays flat over any number of rows.",
    )

    # --- exception records in (issue 23): untrusted input, whoever sends them ---
    record_max_age_seconds: float = Field(
        default=30 * 24 * _HOUR,
        gt=0,
        le=10 * 365 * 24 * _HOUR,
        allow_inf_nan=False,
        description="A record whose `detected_at` is longer ago than this (by the API's clock) is refused with 422 "
        "naming it, and the dispatcher dead-letters it to `exceptions.dlq`: 30 days outlasts Kafka's default 7-day "
        "retention, so a replay of `exceptions` after an outage is still taken.",
    )
    record_max_ahead_seconds: float = Field(
        default=300.0,
        ge=0,
        le=24 * _HOUR,
        allow_inf_nan=False,
        description="A record whose `detected_at` is further ahead of the API's clock than this is refused with 422 "
        "naming it: room for the detector's clock running a little ahead. No exception is ever first or last seen "
        "after the API's now.",
    )

    # --- notifications (issue 16) ---
    notifications_file: Path | None = Field(
        default=None,
        description='Receivers per queue, minimum severities and escalation levels (TOML, see README "On call"); '
        "unset: nobody is told. A receiver's URL may come from an environment variable or a file (`url_env`, "
        "`url_file`) instead of the file itself.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description=(
            "The API's address as operators reach it: notifications link to the console page "
            "`<this>/console/exceptions/<id>`."
        ),
    )
    notify_interval_seconds: float = Field(
        default=1.0, gt=0, description="How often the notification relay looks for notifications to send."
    )
    notify_retry_initial_seconds: float = Field(
        default=1.0, gt=0, description="First wait before a receiver that failed is tried again (then doubled)."
    )
    notify_retry_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait between tries of a failing receiver."
    )
    notify_flap_window_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="A fingerprint that opens again and again (flapping) is told to each receiver at most "
        "`LOOPGATE_NOTIFY_FLAP_MAX` times in this window; later openings are stored but not sent (0: no limit).",
    )
    notify_flap_max: int = Field(
        default=3, ge=1, description="Openings of one fingerprint sent to one receiver per flap window."
    )
    # Careful egress (issue 23): what a receiver's answer may do to the relay.
    notify_max_response_bytes: int = Field(
        default=65536,
        ge=0,
        le=16 * 1024 * 1024,
        description="At most this much of a receiver's answer is read; the rest is never read (the "
        "connection is closed).",
    )
    notify_retry_after_max_seconds: float = Field(
        default=900.0,
        gt=0,
        le=86400,
        description="A receiver's `Retry-After` (seconds or an HTTP date) is honoured up to this long; "
        "a longer one waits this long, garbage or a negative one is ignored (the usual backoff).",
    )
    notify_refusals_before_outage: int = Field(
        default=3,
        ge=1,
        description="A notification a receiver refuses (400, 413, 422) is set aside; this many refusals "
        "in a row, with none accepted between, mean the receiver (its URL, kind or token) is wrong, "
        "not the notifications: the next one stays pending and is retried with backoff.",
    )

    # --- bounds: every list paged, every bulk action capped (issue 23 item 5) ---
    max_silences: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Silences that may be pending or active at once in the deployment; one more is refused (409) "
        "until one ends or is expired.",
    )
    bulk_max_rows: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Exceptions one bulk request (`POST /v1/exceptions/bulk`, `bulk-resolve` by fingerprint, the "
        "console's bulk actions) may change; a filter matching more is refused (422) with the count, so it can be "
        "narrowed.",
    )

    # --- logs and traces (issue 29 item 5; README "Logs and traces") ---
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="`json`: one JSON object per line (timestamp, level, logger, message, and the exception, "
        "event, rule and trace ids of a line about an exception), for a log pipeline; `text`: one escaped "
        "line per record, for people at a terminal. Any other value refuses the start.",
    )
    tracing_enabled: bool = Field(
        default=False,
        description="Export OpenTelemetry traces over OTLP (HTTP/protobuf): a span per upstream event that "
        "fires, continued by the dispatcher, the API, the resolution and the outcome (W3C `traceparent` in "
        "the Kafka headers). Off: no span is made and no header is added.",
    )
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Base URL of the OTLP/HTTP receiver (a collector, Jaeger, Tempo); `/v1/traces` is appended.",
    )
    tracing_service_name: str = Field(
        default="",
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]*$",
        description="The traces' `service.name`; empty: `loopgate-detector`, `loopgate-dispatcher` or "
        "`loopgate-api`, after the service.",
    )

    @field_validator("slas")
    @classmethod
    def _fill_default_slas(cls, value: dict[Severity, Sla]) -> dict[Severity, Sla]:
        return {**DEFAULT_SLAS, **value}

    @model_validator(mode="after")
    def _database_url_from_its_file(self) -> Settings:
        if self.database_url_file is not None:
            inline = self.database_url if "database_url" in self.model_fields_set else ""
            self.database_url = inline_or_file("database_url", inline, self.database_url_file)
        return self

    def dispatcher_token(self) -> str:
        """The dispatcher's token now: `api_token`, or its file read afresh (a rotated or late-mounted
        secret is picked up without a restart). Raises SecretFileError when the file cannot give one."""
        return inline_or_file("api_token", self.api_token, self.api_token_file).strip()

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def bids_topic(self) -> str:
        return self.topic(topics.BIDS)

    @property
    def trafficking_topic(self) -> str:
        return self.topic(topics.TRAFFICKING)

    @property
    def content_topic(self) -> str:
        return self.topic(topics.CONTENT)

    @property
    def exceptions_topic(self) -> str:
        return self.topic(topics.EXCEPTIONS)

    @property
    def exceptions_dlq_topic(self) -> str:
        # Our own topic (not in the contract): exceptions the API refused for good.
        return self.topic(topics.EXCEPTIONS + ".dlq")

    @property
    def outcomes_topic(self) -> str:
        return self.topic(topics.OUTCOMES)

    @property
    def events_dlq_topic(self) -> str:
        return self.topic(topics.EVENTS_DLQ)

    def upstream_topics(self) -> list[str]:
        """The topics upstream teams own and the detector reads."""
        return [self.bids_topic, self.trafficking_topic, self.content_topic]

    def own_topic_partitions(self) -> dict[str, int]:
        """The topics Loopgate itself writes, with their partition counts."""
        return {
            self.exceptions_topic: self.exceptions_partitions,
            self.exceptions_dlq_topic: 1,
            self.outcomes_topic: self.outcomes_partitions,
            self.events_dlq_topic: self.dlq_partitions,
        }

    def topic_partitions(self) -> dict[str, int]:
        """Every topic Loopgate uses, with its explicit partition count."""
        return {
            self.bids_topic: self.upstream_partitions,
            self.trafficking_topic: self.upstream_partitions,
            self.content_topic: self.upstream_partitions,
            self.exceptions_topic: self.exceptions_partitions,
            self.exceptions_dlq_topic: 1,
            self.outcomes_topic: self.outcomes_partitions,
            self.events_dlq_topic: self.dlq_partitions,
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()
