"""What the console's pages show, as pure functions: the caption as the post would appear with its
problems marked, the SLA countdown, the correction an operator's edits amount to."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

from loopgate.common.settings import Sla
from loopgate.resolution_api.exceptions.lifecycle import Status


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of caption text; `mark` says why it is highlighted ("over-limit", "claim") or None."""

    text: str
    mark: str | None = None


def caption_segments(caption: str, *, limit: int | None, claims: list[str]) -> list[Segment]:
    """The caption cut into runs: characters past `limit` marked over-limit, each flagged claim
    (wherever it appears, case-insensitively) marked claim."""
    marks: list[str | None] = [None] * len(caption)
    lowered = caption.lower()
    for claim in claims:
        needle = claim.lower()
        if not needle:
            continue
        start = lowered.find(needle)
        while start != -1:
            for i in range(start, start + len(needle)):
                marks[i] = "claim"
            start = lowered.find(needle, start + len(needle))
    if limit is not None:
        for i in range(limit, len(caption)):
            marks[i] = marks[i] or "over-limit"
    segments: list[Segment] = []
    for i, char in enumerate(caption):
        if segments and segments[-1].mark == marks[i]:
            segments[-1] = Segment(segments[-1].text + char, marks[i])
        else:
            segments.append(Segment(char, marks[i]))
    return segments


def duration(seconds: float) -> str:
    """A short human duration: 45s, 12m, 3h 05m, 2d 4h."""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{math.floor(seconds)}s"
    minutes = math.floor(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@dataclass(frozen=True, slots=True)
class SlaState:
    what: str  # "acknowledge" or "resolve"
    due: dt.datetime
    overdue: bool
    text: str


def sla_countdown(*, status: Status, first_seen: dt.datetime, policy: Sla, now: dt.datetime) -> SlaState | None:
    """The next SLA the exception must meet and how long is left (or how late it is); None once
    resolved. An open exception must be acknowledged (claimed, snoozed), every unresolved one resolved."""
    if status is Status.RESOLVED:
        return None
    what, seconds = (
        ("acknowledge", policy.ack_seconds) if status is Status.OPEN else ("resolve", policy.resolve_seconds)
    )
    if status is Status.OPEN and (now - first_seen).total_seconds() > policy.ack_seconds:
        what, seconds = "resolve", policy.resolve_seconds
    due = first_seen + dt.timedelta(seconds=seconds)
    left = (due - now).total_seconds()
    text = f"{what} within {duration(left)}" if left >= 0 else f"{what} overdue by {duration(left)}"
    return SlaState(what=what, due=due, overdue=left < 0, text=text)


class BadEdit(ValueError):
    """An edited value cannot be read as the field's type; the message names the field."""


def editable_fields(event: dict[str, Any] | None) -> dict[str, Any]:
    """The event's fields an operator may correct: the scalars of its `data` (strings, numbers,
    booleans) and its lists of strings (e.g. product_claims), by name."""
    data = (event or {}).get("data")
    if not isinstance(data, dict):
        return {}
    fields: dict[str, Any] = {}
    for name, value in data.items():
        if isinstance(value, str | int | float | bool) or value is None:
            fields[name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            fields[name] = value
    return fields


def shown(value: Any) -> str:
    """A field's value as the editor shows it: lists one item per line, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "\n".join(value)
    return str(value)


def _parsed(name: str, before: Any, text: str) -> Any:
    if isinstance(before, bool):
        if text.strip().lower() not in ("true", "false"):
            raise BadEdit(f"{name}: true or false")
        return text.strip().lower() == "true"
    if isinstance(before, int | float):
        try:
            number = float(text.strip())
        except ValueError:
            raise BadEdit(f"{name}: a number (was {before})") from None
        if not math.isfinite(number):
            raise BadEdit(f"{name}: a finite number")
        return int(number) if isinstance(before, int) and number.is_integer() else number
    if isinstance(before, list):
        return [line.strip() for line in text.splitlines() if line.strip()]
    if before is None and not text.strip():
        return None
    return text.replace("\r\n", "\n")


def correction_from_edits(before: dict[str, Any], edits: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The correction, field by field, that the operator's edits make: {field: {before, after}} for
    each editable field whose edited value differs from the event's; fields not edited are left out."""
    correction: dict[str, dict[str, Any]] = {}
    for name, text in edits.items():
        if name not in before:
            continue
        if text == shown(before[name]):
            continue
        after = _parsed(name, before[name], text)
        if after != before[name]:
            correction[name] = {"before": before[name], "after": after}
    return correction
