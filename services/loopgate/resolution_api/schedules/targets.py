"""People as escalation targets: which person a level reaches at a moment (the schedule's current
person, or a person by name) and the receivers that carry their channels. Checked at start against
both files: a level naming a schedule or a person that does not exist, or a channel naming a
receiver that does not exist, refuses to start, naming the key; so does an address the channel's
receiver cannot carry (an email receiver: one email address, no list or header; PagerDuty: a
32-character routing key; Opsgenie: a user name, an email address)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopgate.resolution_api.notifications.channels import email, opsgenie, pagerduty
from loopgate.resolution_api.notifications.config import (
    EscalationLevel,
    NotificationsConfig,
    NotificationsConfigError,
)
from loopgate.resolution_api.schedules.config import SchedulesConfig
from loopgate.resolution_api.schedules.oncall import on_call


def check_escalation_targets(notifications: NotificationsConfig, schedules: SchedulesConfig, path: Path | None) -> None:
    """NotificationsConfigError naming the first level target or channel that names nothing."""
    where = f"{path}: " if path else ""
    for queue_name, queue in notifications.queues.items():
        for number, level in enumerate(queue.escalation):
            key = f"queues.{queue_name}.escalation.{number}"
            for i, schedule in enumerate(level.oncall):
                if schedule not in schedules.schedules:
                    raise NotificationsConfigError(
                        f"{where}{key}.oncall.{i}: no schedule named {schedule!r} in the schedules file"
                    )
            for i, person in enumerate(level.people):
                if person not in schedules.people:
                    raise NotificationsConfigError(
                        f"{where}{key}.people.{i}: no person named {person!r} in the schedules file"
                    )
    for name, someone in schedules.people.items():
        for i, channel in enumerate(someone.channels):
            if channel.receiver is not None and channel.receiver not in notifications.receivers:
                raise NotificationsConfigError(
                    f"{where}the schedules file's people.{name}.channels.{i}.receiver: no receiver named "
                    f"{channel.receiver!r} in the notifications file"
                )
            kind = notifications.receivers[channel.receiver].kind if channel.receiver is not None else None
            if (check := ADDRESS_CHECKS.get(kind or "")) is not None:
                try:
                    check(channel.address)
                except ValueError as err:
                    raise NotificationsConfigError(
                        f"{where}the schedules file's people.{name}.channels.{i}.address: receiver "
                        f"{channel.receiver!r} is {kind}: {err}"
                    ) from None


ADDRESS_CHECKS: dict[str, Callable[[str], str]] = {
    "email": email.person_address,
    "pagerduty": pagerduty.person_key,
    "opsgenie": opsgenie.person_username,
}


@dataclass(frozen=True, slots=True)
class Paged:
    """A person a level reaches, and from where (`schedule`: their turn; None: named by the level)."""

    person: str
    schedule: str | None

    def as_fields(self, schedules: SchedulesConfig) -> dict[str, Any]:
        person = schedules.people[self.person]
        return {
            "person": self.person,
            "schedule": self.schedule,
            "channels": [{"kind": c.kind, "address": c.address, "receiver": c.receiver} for c in person.channels],
        }


def paged_by(level: EscalationLevel, schedules: SchedulesConfig, now: dt.datetime) -> tuple[list[Paged], list[str]]:
    """(the people the level reaches at `now`, the schedules in which nobody is on call then)."""
    paged: list[Paged] = []
    nobody: list[str] = []
    for schedule in level.oncall:
        person = on_call(schedules, schedule, now).person if schedule in schedules.schedules else None
        if person is None:
            nobody.append(schedule)
        elif all(p.person != person for p in paged):
            paged.append(Paged(person, schedule))
    for person in level.people:
        if person in schedules.people and all(p.person != person for p in paged):
            paged.append(Paged(person, None))
    return paged, nobody


def addresses_for(people: list[dict[str, Any]] | None, receiver: str) -> tuple[str, ...]:
    """The addresses of the paged people (as an escalation event keeps them) that `receiver` carries."""
    return tuple(
        str(channel["address"])
        for person in people or []
        for channel in person.get("channels", [])
        if channel.get("receiver") == receiver
    )


def receivers_for(level: EscalationLevel, paged: list[Paged], schedules: SchedulesConfig) -> list[str]:
    """The level's receivers, then those carrying each paged person's channels, once each."""
    names = list(level.receivers)
    for p in paged:
        names.extend(c.receiver for c in schedules.people[p.person].channels if c.receiver is not None)
    return list(dict.fromkeys(names))
