"""Grouped notifications and inhibition in Alertmanager's terms, as pure functions (issue 28 item 3).
groups.py applies the grouping (group_by, group_wait, group_interval, repeat_interval),
inhibition.py the inhibit rules.

Grouping: per queue, `group_by` labels (rule, client, ...) put exceptions into groups; a group's
first message waits `group_wait` after its first exception (so a storm arrives as one message);
while new exceptions join, at most one message per `group_interval` lists the new ones; with no
new ones, the firing group is told again every `repeat_interval`.

Inhibition: while an exception matching a rule's `source` matcher is firing (unresolved), a new
exception matching its `target` matcher with the same values of the `equal` labels is held back
(a critical overspend on a campaign holds back that campaign's lower-severity noise); it is told
when no inhibiting exception fires any more. An exception never inhibits itself."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from loopgate.common.strict_toml import Strict
from loopgate_schemas.exceptions import Severity

Label = Literal["rule", "client", "source", "severity", "kind", "queue", "subject"]
Value = Annotated[str, Field(min_length=1, max_length=255)]
Labels = Mapping[str, str]


class Grouping(Strict):
    """A queue's grouping, in seconds (Alertmanager's defaults: 30 s, 5 min, 4 h)."""

    group_by: list[Label] = Field(min_length=1, max_length=7)
    group_wait: float = Field(default=30.0, ge=0, le=24 * 3600)
    group_interval: float = Field(default=300.0, gt=0, le=24 * 3600)
    repeat_interval: float = Field(default=4 * 3600.0, gt=0, le=30 * 24 * 3600)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by: a label is named twice")
        if self.repeat_interval < self.group_interval:
            raise ValueError("repeat_interval: must be at least group_interval")
        return self


def group_key(grouping: Grouping, labels: Labels) -> str:
    """The group an exception with these labels belongs to: the group_by labels' values, stable
    (the same labels always give the same key, whatever their order); a missing label is ''."""
    return json.dumps({name: labels.get(name, "") for name in sorted(grouping.group_by)}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class GroupState:
    """One group for one receiver: when its first exception joined, when its last message was
    sent (None: never), whether exceptions joined since, and whether any is still firing."""

    first_joined: dt.datetime
    last_message: dt.datetime | None
    new_since_message: bool
    firing: bool


def next_message(grouping: Grouping, state: GroupState) -> dt.datetime | None:
    """When the group's next message is due (it may be in the past: send now); None: nothing to tell."""
    if state.last_message is None:
        return state.first_joined + dt.timedelta(seconds=grouping.group_wait) if state.new_since_message else None
    if state.new_since_message:
        return state.last_message + dt.timedelta(seconds=grouping.group_interval)
    if state.firing:
        return state.last_message + dt.timedelta(seconds=grouping.repeat_interval)
    return None


class Matcher(Strict):
    """Every label given must hold (a list: any of its values); `min_severity` a minimum."""

    rule: list[Value] | None = Field(default=None, min_length=1)
    client: list[Value] | None = Field(default=None, min_length=1)
    source: list[Value] | None = Field(default=None, min_length=1)
    kind: list[Value] | None = Field(default=None, min_length=1)
    queue: list[Value] | None = Field(default=None, min_length=1)
    severity: list[Severity] | None = Field(default=None, min_length=1)
    min_severity: Severity | None = None

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.severity is not None and self.min_severity is not None:
            raise ValueError("give severity (exact) or min_severity, not both")
        if not any(getattr(self, name) is not None for name in type(self).model_fields):
            raise ValueError("an empty matcher matches everything: name at least one label")
        return self

    def matches(self, labels: Labels) -> bool:
        for name in ("rule", "client", "source", "kind", "queue", "severity"):
            wanted = getattr(self, name)
            if wanted is not None and labels.get(name) not in wanted:
                return False
        if self.min_severity is not None:
            try:
                return Severity(labels.get("severity", "")).rank >= self.min_severity.rank
            except ValueError:
                return False
        return True


class InhibitRule(Strict):
    source: Matcher
    target: Matcher
    equal: list[Label] = Field(default_factory=list, max_length=7)


@dataclass(frozen=True, slots=True)
class Firing:
    """An unresolved exception that may inhibit others."""

    exception_id: str
    labels: Labels


def inhibited_by(
    rules: Iterable[InhibitRule], exception_id: str, labels: Labels, firing: Iterable[Firing]
) -> tuple[int, str] | None:
    """(the rule's index, the firing exception's id) holding this exception's notifications back; None: told."""
    candidates = [f for f in firing if f.exception_id != exception_id]
    for index, rule in enumerate(rules):
        if not rule.target.matches(labels):
            continue
        for source in candidates:
            if rule.source.matches(source.labels) and all(
                source.labels.get(name, "") == labels.get(name, "") for name in rule.equal
            ):
                return index, source.exception_id
    return None
