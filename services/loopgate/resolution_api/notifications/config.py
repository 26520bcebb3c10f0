"""Who is told: receivers and, per queue, which of them hear of an exception and who is next when
nobody acts. Loaded from a TOML file (LOOPGATE_NOTIFICATIONS_FILE) into strict models: an unknown
key, a bad URL or a negative time refuses to start, naming the key.

    [receivers.oncall]              # a name of your choosing, used below and in metrics
    kind = "webhook"                # webhook (CloudEvents), slack (incoming webhook), alertmanager,
                                    # email (channels/email.py: its [receivers.NAME.smtp] table),
                                    # pagerduty (Events API v2) or opsgenie (alert API): for these
                                    # two the key from key_env or key_file, the url optional
    url_env = "ONCALL_WEBHOOK_URL"  # the URL itself, from an environment variable (url_env), a
                                    # file such as a mounted secret (url_file), or written here (url)
    clients = ["northwind"]         # optional: a client's own receiver, told of its exceptions only
    secret_file = "/run/secrets/oncall-webhook"  # signs each request (Standard Webhooks): a
                                    # whsec_<base64> secret from a file or an environment variable
                                    # (secret_env), never written here
    timeout_seconds = 10
    # slack, email, pagerduty, opsgenie: template_file = "/etc/loopgate/oncall.j2", the message's
    # Jinja2 template (sandboxed, templates.py), else the shipped default

    [queues.default]                # a queue (team) without its own table uses [queues.default]
    receivers = ["oncall"]          # told when an exception opens, escalates or breaches its SLA
    min_severity = "high"           # opened exceptions below this are not sent (default: info)

    [[queues.default.escalation]]   # level 1, then level 2, ... in the order written
    after_seconds = 900             # from the first detection
    when = "unclaimed"              # still unclaimed (nobody claimed it) or "unresolved"
    receivers = ["lead"]
    oncall = ["media-buying"]       # and whoever is on call in this schedule then (the schedules file)
    people = ["team-lead"]          # and this person, by name
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml
from loopgate.resolution_api.notifications.channels import opsgenie, pagerduty
from loopgate.resolution_api.notifications.channels.catalog import TEMPLATED_KINDS, templates_for
from loopgate.resolution_api.notifications.channels.email import SmtpSettings
from loopgate.resolution_api.notifications.grouping import Grouping, InhibitRule, Label
from loopgate.resolution_api.notifications.signing import parse_secret
from loopgate.resolution_api.notifications.templates import Part, TemplateError
from loopgate_schemas.exceptions import Severity

DEFAULT_QUEUE = "default"
ReceiverName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
ClientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
EnvName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
MAX_FIRING_HOLD_SECONDS = 366 * 24 * 3600.0


class NotificationsConfigError(LoopgateError):
    """The notifications file cannot be used; the message names the file and the key."""


def checked_url(url: str) -> str:
    """An http(s) URL with a host, or ValueError saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return url.strip()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a receiver is reached, and the key its requests are signed with (if any)."""

    url: str
    secret: bytes | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)  # PagerDuty's routing key, Opsgenie's API key, SMTP's password
    templates: dict[str, Part] = field(default_factory=dict, repr=False)


class Receiver(Strict):
    kind: Literal["webhook", "slack", "alertmanager", "email", "pagerduty", "opsgenie"]
    # A client's own receiver (their chat, their webhook): told of that client's exceptions only,
    # whichever queue or escalation level names it. None: the agency's, told of every client.
    clients: list[ClientId] | None = Field(default=None, min_length=1, max_length=100)
    url: str | None = None
    url_env: EnvName | None = None
    url_file: Path | None = None
    secret_env: EnvName | None = None
    secret_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    smtp: SmtpSettings | None = None  # email
    key_env: EnvName | None = None  # pagerduty, opsgenie: the routing key or API key
    key_file: Path | None = None
    template_file: Path | None = None
    subject_template: str | None = Field(default=None, min_length=1, max_length=2000)  # email
    # Alertmanager forgets a firing alert that is not sent again before its endsAt: a firing alert
    # carries endsAt this long after its start, and the resolved alert ends it sooner. Bounded: a
    # hold that overflowed every alert's date would set them all aside.
    firing_hold_seconds: float = Field(default=7 * 24 * 3600.0, gt=0, le=MAX_FIRING_HOLD_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "secret" in data:
            raise ValueError("secret: never written in this file: name a file (secret_file) or a variable (secret_env)")
        return data

    @model_validator(mode="after")
    def _one_url(self) -> Self:
        given = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        self._channel_keys(given)
        if self.kind == "email" or (self.kind in ("pagerduty", "opsgenie") and not given):
            pass  # email has no URL; PagerDuty's and Opsgenie's have defaults
        elif len(given) != 1:
            raise ValueError(f"give exactly one of url, url_env, url_file (given: {', '.join(given) or 'none'})")
        if self.secret_env is not None and self.secret_file is not None:
            raise ValueError("give at most one of secret_env, secret_file")
        if self.url is not None:
            try:
                checked_url(self.url)
            except ValueError as err:
                raise ValueError(f"url: {err}") from None
        return self

    def _channel_keys(self, given: list[str]) -> None:
        """Each key with the kinds it belongs to, said when given to another."""
        for key, kinds in (
            ("smtp", ("email",)),
            ("subject_template", ("email",)),
            ("key_env", ("pagerduty", "opsgenie")),
            ("key_file", ("pagerduty", "opsgenie")),
            ("template_file", tuple(sorted(TEMPLATED_KINDS))),
        ):
            if getattr(self, key) is not None and self.kind not in kinds:
                raise ValueError(f"{key}: only for kind {' or '.join(kinds)}, not {self.kind}")
        if self.kind == "email":
            if self.smtp is None:
                raise ValueError("smtp: an email receiver needs its [receivers.NAME.smtp] table")
            if given:
                raise ValueError(f"{given[0]}: an email receiver has no URL (its server is in smtp)")
        if self.kind in ("pagerduty", "opsgenie"):
            if (self.key_env is None) == (self.key_file is None):
                raise ValueError("give exactly one of key_env, key_file")
            if self.secret_env is not None or self.secret_file is not None:
                raise ValueError(f"secret_env/secret_file: {self.kind} is authenticated by its key, not signed")

    def resolved_key(self) -> str | None:
        """PagerDuty's routing key, Opsgenie's API key or the SMTP password; None when none."""
        if self.smtp is not None:
            return self.smtp.password()
        if self.key_env is not None:
            value = os.environ.get(self.key_env, "").strip()
            if not value:
                raise ValueError(f"key_env: the environment variable {self.key_env} is not set")
        elif self.key_file is not None:
            try:
                value = self.key_file.read_text().strip()
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(f"key_file: {self.key_file}: cannot be read ({type(err).__name__})") from None
            if not value:
                raise ValueError(f"key_file: {self.key_file} is empty")
        else:
            return None
        if not value.isascii() or not value.isprintable() or len(value) > 512:
            raise ValueError(f"key_{'env' if self.key_env else 'file'}: not a key (printable ASCII, at most 512)")
        return value

    def resolved_url(self) -> str:
        """The receiver's URL, read from the environment or the file where it is kept."""
        if self.smtp is not None:
            return f"smtp://{self.smtp.host}:{self.smtp.port}"
        if self.url is None and self.url_env is None and self.url_file is None:
            return pagerduty.EVENTS_URL if self.kind == "pagerduty" else opsgenie.API_URL
        if self.url is not None:
            return checked_url(self.url)
        if self.url_env is not None:
            value = os.environ.get(self.url_env)
            if not value:
                raise ValueError(f"url_env: the environment variable {self.url_env} is not set")
            try:
                return checked_url(value)
            except ValueError as err:
                raise ValueError(f"url_env: {self.url_env} {err}") from None
        assert self.url_file is not None
        try:
            return checked_url(self.url_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"url_file: {err}") from None

    def resolved_secret(self) -> bytes | None:
        """The signing key, read from its environment variable or file; None when unsigned. The
        error names where it was looked for, never the secret."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if value is None:
                raise ValueError(f"secret_env: the environment variable {self.secret_env} is not set")
            try:
                return parse_secret(value)
            except ValueError as err:
                raise ValueError(f"secret_env: {self.secret_env}: {err}") from None
        if self.secret_file is not None:
            try:
                return parse_secret(self.secret_file.read_text())
            except FileNotFoundError:
                raise ValueError(f"secret_file: {self.secret_file} does not exist") from None
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(f"secret_file: {self.secret_file}: cannot be read ({type(err).__name__})") from None
            except ValueError as err:
                raise ValueError(f"secret_file: {self.secret_file}: {err}") from None
        return None


class EscalationLevel(Strict):
    after_seconds: float = Field(gt=0)
    when: Literal["unclaimed", "unresolved"] = "unclaimed"
    receivers: list[ReceiverName] = Field(default_factory=list)
    # people (the schedules file): whoever is on call in these schedules when the level is reached,
    # and these people by name; each is reached on their channels (schedules/targets.py)
    oncall: list[ReceiverName] = Field(default_factory=list, max_length=20)
    people: list[ReceiverName] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not (self.receivers or self.oncall or self.people):
            raise ValueError("a level tells someone: give receivers, oncall (schedules) or people")
        return self


class Queue(Strict):
    receivers: list[ReceiverName] = Field(default_factory=list)
    min_severity: Severity = Severity.INFO
    escalation: list[EscalationLevel] = Field(default_factory=list)
    # Alertmanager's grouping of openings (notifications/grouping.py, groups.py): one message per
    # group lists its new exceptions; unset group_by: one message per exception
    group_by: list[Label] | None = Field(default=None, min_length=1, max_length=7)
    group_wait: float | None = Field(default=None, ge=0, le=24 * 3600)
    group_interval: float | None = Field(default=None, gt=0, le=24 * 3600)
    repeat_interval: float | None = Field(default=None, gt=0, le=30 * 24 * 3600)

    @model_validator(mode="after")
    def _grouping(self) -> Self:
        if self.group_by is None:
            timers = [k for k in ("group_wait", "group_interval", "repeat_interval") if getattr(self, k) is not None]
            if timers:
                raise ValueError(f"{timers[0]}: groups need group_by")
        else:
            self.grouping  # noqa: B018  (validates the timers together)
        return self

    @property
    def grouping(self) -> Grouping | None:
        if self.group_by is None:
            return None
        timers = {k: getattr(self, k) for k in ("group_wait", "group_interval", "repeat_interval")}
        return Grouping(group_by=self.group_by, **{k: v for k, v in timers.items() if v is not None})


class NotificationsConfig(Strict):
    receivers: dict[ReceiverName, Receiver] = Field(default_factory=dict)
    queues: dict[str, Queue] = Field(default_factory=dict)
    # [[inhibit_rules]]: while an exception matching `source` fires, openings matching `target`
    # with the same `equal` labels tell nobody (notifications/inhibition.py)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _known_receivers(self) -> Self:
        for name, queue in self.queues.items():
            for i, receiver in enumerate(queue.receivers):
                if receiver not in self.receivers:
                    raise ValueError(f"queues.{name}.receivers.{i}: no receiver named {receiver!r}")
            for level, step in enumerate(queue.escalation):
                for i, receiver in enumerate(step.receivers):
                    if receiver not in self.receivers:
                        key = f"queues.{name}.escalation.{level}.receivers.{i}"
                        raise ValueError(f"{key}: no receiver named {receiver!r}")
        return self

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: dict[str, Queue]) -> dict[str, Queue]:
        for name in value:
            if not name or len(name) > 64:
                raise ValueError(f"queue name {name!r} must have 1 to 64 characters")
        return value

    def may_tell(self, receiver: str, client_id: str | None) -> bool:
        """Whether `receiver` may hear of an exception of `client_id`: a client's own receiver
        hears of that client's alone."""
        clients = self.receivers[receiver].clients if receiver in self.receivers else None
        return clients is None or client_id in clients

    def queue(self, name: str) -> Queue:
        """The queue's table, or the default one's for a queue without its own (empty if neither)."""
        return self.queues.get(name) or self.queues.get(DEFAULT_QUEUE) or Queue()

    @property
    def deepest_escalation(self) -> int:
        return max((len(q.escalation) for q in self.queues.values()), default=0)


def load_notifications(path: Path | None) -> tuple[NotificationsConfig, dict[str, Endpoint]]:
    """The configuration and each receiver's URL and signing key (secrets resolved now, so a
    missing one fails the start); no file: nobody is told."""
    if path is None:
        return NotificationsConfig(), {}
    config = load_toml(path, NotificationsConfig, error=NotificationsConfigError)
    endpoints = {}
    for name, receiver in config.receivers.items():
        try:
            endpoints[name] = Endpoint(
                url=receiver.resolved_url(), secret=receiver.resolved_secret(), key=receiver.resolved_key()
            )
        except ValueError as err:
            raise NotificationsConfigError(f"{path}: receivers.{name}.{err}") from None
        try:
            templates = templates_for(
                name, receiver.kind, template_file=receiver.template_file, subject_template=receiver.subject_template
            )
        except TemplateError as err:
            raise NotificationsConfigError(f"{path}: {err}") from None
        endpoints[name] = dataclasses.replace(endpoints[name], templates=templates)
    return config, endpoints
