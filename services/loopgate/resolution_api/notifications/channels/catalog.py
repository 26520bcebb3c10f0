"""Per receiver kind: its template parts (the receiver's own, else the shipped defaults), how
each is escaped and bounded, and how a notification's payload is rendered with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.notifications.channels import email, opsgenie, pagerduty
from loopgate.resolution_api.notifications.channels.common import template_context
from loopgate.resolution_api.notifications.payloads import SLACK_SUMMARY_CHARACTERS, Told, slack_text
from loopgate.resolution_api.notifications.templates import Part, check, load_part, sample_context

TEMPLATED_KINDS = frozenset({"slack", "email", "pagerduty", "opsgenie"})
SLACK_TEXT_CHARACTERS = 20_000  # Slack cuts a message's text at 40,000


def _slack_value(value: Any) -> str:
    """Every value a chat template outputs is data: one line, `&`, `<`, `>` escaped (mrkdwn)."""
    return slack_text(value, SLACK_SUMMARY_CHARACTERS)


def templates_for(name: str, kind: str, *, template_file: Path | None, subject_template: str | None) -> dict[str, Part]:
    """The receiver's compiled parts, each checked against the sample exception (TemplateError
    naming receivers.<name>.<key> and the line)."""
    key = f"receivers.{name}"
    parts: dict[str, Part] = {}
    if kind == "slack":
        if template_file is not None:  # else the built-in text (payloads.slack_body)
            parts["text"] = load_part(
                name=f"{key}.template_file",
                file=template_file,
                default="slack.txt.j2",
                bound=SLACK_TEXT_CHARACTERS,
                finalize=_slack_value,
            )
    elif kind == "email":
        parts["subject"] = load_part(
            name=f"{key}.subject_template",
            file=None,
            inline=subject_template,
            default="email_subject.txt.j2",
            bound=email.SUBJECT_CHARACTERS,
            single_line=True,
        )
        parts["html"] = load_part(
            name=f"{key}.template_file",
            file=template_file,
            default="email.html.j2",
            bound=email.BODY_CHARACTERS,
            autoescape=True,
        )
        parts["text"] = load_part(name=f"{key}.text", file=None, default="email.txt.j2", bound=email.BODY_CHARACTERS)
    elif kind == "pagerduty":
        parts["summary"] = load_part(
            name=f"{key}.template_file",
            file=template_file,
            default="pagerduty.txt.j2",
            bound=pagerduty.SUMMARY_CHARACTERS,
            single_line=True,
        )
    elif kind == "opsgenie":
        parts["message"] = load_part(
            name=f"{key}.template_file",
            file=template_file,
            default="opsgenie.txt.j2",
            bound=opsgenie.MESSAGE_CHARACTERS,
            single_line=True,
        )
    sample = sample_context()
    sample["receiver"] = name
    for part in parts.values():
        check(part, sample)
    return parts


def render_channel(
    row: ExceptionRow, told: Told, *, kind: str, public_url: str, templates: dict[str, Part]
) -> dict[str, Any] | None:
    """The payload of a templated kind, or None for the kinds payloads.render builds itself."""
    if kind == "email":
        return email.body(row, told, public_url=public_url, templates=templates)
    if kind == "pagerduty":
        return pagerduty.body(row, told, public_url=public_url, templates=templates)
    if kind == "opsgenie":
        return opsgenie.body(row, told, public_url=public_url, templates=templates)
    if kind == "slack" and "text" in templates:
        return {"text": templates["text"].render(template_context(row, told, public_url=public_url))}
    return None
