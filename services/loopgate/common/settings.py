"""Typed settings for every service: environment variables with the `LOOPGATE_` prefix.

Defaults work locally with nothing set (broker on 127.0.0.1:9092, SQLite file in .run/).
Read when a service starts, through the cached `get_settings()`, never at import.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Prepended to every topic and consumer group: isolates test runs on a shared broker.
    # Empty in production, where the contract's names are used as they are.
    topic_prefix: str = ""
    upstream_partitions: int = Field(default=6, ge=1)
    exceptions_partitions: int = Field(default=6, ge=1)
    outcomes_partitions: int = Field(default=3, ge=1)
    dlq_partitions: int = Field(default=3, ge=1)

    # --- detector ---
    detector_app_id: str = "loopgate-detector"
    detection_config: Path | None = None  # TOML; None = the packaged defaults
    detector_metrics_port: int = 9101
    detector_data_dir: Path = Path(".run/detector")
    # Above the broker's ~1 MiB message limit: a valid event is never rejected for its size alone (contract).
    max_event_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # How long a worker that died without leaving (SIGKILL, lost host) holds its partitions before
    # the group gives them to the others. Long enough for a busy worker to keep heartbeating.
    detector_session_timeout_seconds: float = Field(default=60.0, ge=6.0)

    # --- dispatcher ---
    dispatcher_group: str = "loopgate-dispatcher"
    dispatcher_metrics_port: int = 9102
    api_url: str = "http://127.0.0.1:8000"
    api_token: str = ""  # a `service` token, created with `loopgate tokens create --role service`
    dispatch_concurrency: int = Field(default=32, ge=1)
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)

    # --- resolution API ---
    database_url: str = "sqlite+aiosqlite:///.run/loopgate.db"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    outbox_interval_seconds: float = Field(default=1.0, gt=0)
    # How often snoozes that ran out are woken and SLAs are checked.
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # A verified token is trusted this long without a database read (0: every request reads).
    # Revoking through this API process takes effect at once; through the CLI or another API
    # process, within this many seconds.
    token_cache_seconds: float = Field(default=5.0, ge=0)
    # Per severity; JSON in LOOPGATE_SLAS, e.g. {"critical": {"ack_seconds": 600, "resolve_seconds": 3600}}.
    # A breach escalates the exception. Severities left out keep their defaults.
    slas: dict[Severity, Sla] = Field(default_factory=lambda: dict(DEFAULT_SLAS))
    # Request bodies larger than this are refused with 413 before they are read, parsed or
    # authenticated (a 512 KiB exception record with its JSON overhead fits).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # The longest snooze an operator may ask for; the SLA deadlines still apply while snoozed.
    max_snooze_seconds: float = Field(default=30 * 24 * _HOUR, gt=0, le=365 * 24 * _HOUR)
    # Stopping the API (its intake, outbox relay and sweeper) takes at most about this long,
    # even while Kafka or the database does not answer.
    api_shutdown_seconds: float = Field(default=10.0, gt=0, le=300)
    environment: str = "development"

    @field_validator("slas")
    @classmethod
    def _fill_default_slas(cls, value: dict[Severity, Sla]) -> dict[Severity, Sla]:
        return {**DEFAULT_SLAS, **value}

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
