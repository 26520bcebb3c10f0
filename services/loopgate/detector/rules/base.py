"""What a rule returns when it fires: everything the exception record needs but the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopgate_schemas.exceptions import Kind


@dataclass(frozen=True, slots=True)
class Firing:
    rule_id: str
    kind: Kind
    subject: str
    summary: str
    observed: dict[str, Any]
    threshold: dict[str, Any] | None = None
    expected: dict[str, Any] | None = None
    score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def pct_over(value: float, limit: float) -> str:
    return f"{(value / limit - 1) * 100:.0f}%" if limit else "inf%"
