"""Email over SMTP (aiosmtplib): STARTTLS (the default), implicit TLS or, for a relay on the same
host, none; AUTH with a user name and a password from the environment or a file. The server's
certificate is verified (the system's CAs, or `ca_file`); a server that does not offer STARTTLS
when it is asked for is never written to in the clear.

    [receivers.mail]
    kind = "email"
    template_file = "/etc/loopgate/mail.html.j2"   # optional: the HTML body (autoescaped)
    subject_template = "[{{ exception.severity|upper }}] {{ exception.rule_id }}"   # optional
    [receivers.mail.smtp]
    host = "smtp.example.com"
    port = 587
    security = "starttls"             # starttls, tls or none
    username = "loopgate"
    password_file = "/run/secrets/smtp"   # or password_env
    from_address = "Loopgate <loopgate@example.com>"
    to = ["oncall@example.com"]

Every failure is the server's or the settings' (refused login, refused sender or recipients, no
STARTTLS, a bad certificate, no answer): the notification waits and is retried, the receiver
is shown failing. The Message-ID is the notification's id, so a resend after a crash between
the server's answer and the record is recognisable as the same message."""

from __future__ import annotations

import email.utils
import json
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Self

import aiosmtplib
from pydantic import Field, field_validator, model_validator

from loopgate.common.strict_toml import Strict
from loopgate.common.text import one_line
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.channels.common import template_context
from loopgate.resolution_api.notifications.payloads import Told
from loopgate.resolution_api.notifications.templates import Part

SUBJECT_CHARACTERS = 250
BODY_CHARACTERS = 200_000


def _address(value: str) -> str:
    if one_line(value, len(value)) != value or len(value) > 320:
        raise ValueError(f"{value!r}: one line of at most 320 characters")
    if len(email.utils.getaddresses([value])) != 1:
        raise ValueError(f"{value!r}: one address, not a list")
    _, address = email.utils.parseaddr(value)
    local, _, domain = address.rpartition("@")
    if not local or not domain or " " in address:
        raise ValueError(f"{value!r} is not an email address")
    return value


class SmtpSettings(Strict):
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = Field(default=None, min_length=1, max_length=255)
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password_file: Path | None = None
    ca_file: Path | None = None  # the CA the server's certificate is checked against (else the system's)
    from_address: str
    to: list[str] = Field(min_length=1, max_length=50)

    _from = field_validator("from_address")(classmethod(lambda cls, v: _address(v)))

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @model_validator(mode="after")
    def _auth(self) -> Self:
        has_password = self.password_env is not None or self.password_file is not None
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give at most one of password_env, password_file")
        if has_password != (self.username is not None):
            raise ValueError("username and a password (password_env or password_file) go together")
        if self.username is not None and self.security == "none":
            raise ValueError("security: a password is never sent without TLS (starttls or tls)")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file: {self.ca_file} does not exist")
        return self

    def password(self) -> str | None:
        """The password from its variable or file (the error names where, never the password)."""
        import os

        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(f"smtp.password_env: the environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(
                    f"smtp.password_file: {self.password_file}: cannot be read ({type(err).__name__})"
                ) from None
        return None

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def person_address(value: str) -> str:
    """A person's email address (the schedules file): one address on one line, else ValueError."""
    return _address(value)


def body(row: ExceptionRow, told: Told, *, public_url: str, templates: dict[str, Part]) -> dict[str, Any]:
    """The message's parts; `to`: the paged people's addresses (an escalation to a person), who
    receive it instead of the receiver's `to`."""
    context = template_context(row, told, public_url=public_url)
    return {
        "subject": templates["subject"].render(context),
        "text": templates["text"].render(context),
        "html": templates["html"].render(context),
        **({"to": [_address(a) for a in told.to]} if told.to else {}),
    }


def message(smtp: SmtpSettings, payload: str, notification_id: str) -> EmailMessage:
    parts = json.loads(payload)
    mail = EmailMessage()
    mail["From"] = smtp.from_address
    mail["To"] = ", ".join(_address(a) for a in parts["to"]) if parts.get("to") else ", ".join(smtp.to)
    mail["Subject"] = one_line(parts["subject"], SUBJECT_CHARACTERS)
    mail["Message-ID"] = f"<{notification_id}@loopgate>"
    mail["Date"] = email.utils.formatdate(usegmt=True)
    mail["X-Loopgate-Notification-Id"] = notification_id
    mail.set_content(parts["text"])
    mail.add_alternative(parts["html"], subtype="html")
    return mail


async def send(
    smtp: SmtpSettings, password: str | None, mail: EmailMessage, *, seconds: float
) -> tuple[str, str] | None:
    """Send one message; None when the server took it, else (reason, metric label). The caller
    bounds the time too."""
    try:
        await aiosmtplib.send(
            mail,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=password,
            use_tls=smtp.security == "tls",
            start_tls=True if smtp.security == "starttls" else False,
            tls_context=smtp.tls_context() if smtp.security != "none" else None,
            timeout=seconds,
        )
    except aiosmtplib.SMTPAuthenticationError as err:
        return f"smtp_auth: {err.code} {one_line(err.message, 200)} (check username and password)", "auth"
    except aiosmtplib.SMTPRecipientsRefused as err:
        said = "; ".join(f"{r.recipient}: {r.code}" for r in err.recipients)
        return f"smtp_recipients_refused: {one_line(said, 300)}", "smtp_refused"
    except aiosmtplib.SMTPTimeoutError as err:
        return f"timeout: {one_line(str(err), 200)}", "timeout"
    except aiosmtplib.SMTPResponseException as err:
        return f"smtp_{err.code}: {one_line(err.message, 200)}", f"smtp_{err.code // 100}xx"
    except ssl.SSLCertVerificationError as err:
        return f"certificate: {one_line(str(err), 300)}", "certificate"
    except (aiosmtplib.SMTPException, OSError) as err:
        if isinstance(err.__cause__ or err.__context__, ssl.SSLCertVerificationError):
            return f"certificate: {one_line(str(err), 300)}", "certificate"
        return f"connection: {type(err).__name__}: {one_line(str(err), 300)}", "connection"
    return None
