"""The schedules file (TOML, LOOPGATE_SCHEDULES_FILE): people with their channels, and schedules of
rotation layers and overrides. Loaded strictly when the API starts: an unknown key, an unknown time
zone, a rotation with nobody in it, a person nobody defined or two overrides of one schedule that
overlap refuse to start, naming the key.

    [people.alice]
    name = "Alice Martin"
    channels = [                                  # how she is reached: a kind and an address
        { kind = "chat", address = "<@U024BE7LH>", receiver = "team-slack" },
        { kind = "email", address = "alice@example.com" },
        { kind = "pagerduty", address = "R0UTINGKEY0123456789ABCDEFGHIJKL" },
    ]

    [schedules.media-buying]
    time_zone = "Europe/London"                   # an IANA zone: hand-offs keep their local time over DST

    [[schedules.media-buying.layers]]             # later layers win where they are active
    name = "primary"
    rotation = "weekly"                           # or "daily"
    start = 2026-10-05                            # the first hand-off's local date (weekly: its weekday)
    handoff = "09:00"                             # local time of every hand-off
    people = ["alice", "bob"]                     # in turn, from start
    active = { from = "18:00", to = "09:00" }     # optional: the layer covers these local hours only

    [[schedules.media-buying.overrides]]          # someone else for a period
    person = "carol"
    start = 2026-10-24T18:00:00+01:00
    end = 2026-10-26T09:00:00Z
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, field_validator, model_validator

from loopgate.common.errors import LoopgateError
from loopgate.common.strict_toml import Strict, load_toml

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
ChannelKind = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
_CLOCK_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class SchedulesError(LoopgateError):
    """The schedules file cannot be used; the message names the file and the key."""


def _clock_time(value: str) -> dt.time:
    match = _CLOCK_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"{value!r} is not a local time HH:MM (00:00 to 23:59)")
    return dt.time(int(match[1]), int(match[2]))


class Channel(Strict):
    """One way to reach a person: its kind (chat, email, pagerduty, or any kind a receiver has) and
    the address within it (a chat mention, an email address, a PagerDuty routing key)."""

    kind: ChannelKind
    address: str = Field(min_length=1, max_length=512)
    # the notifications file's receiver that carries this channel (the team's chat for a mention,
    # the SMTP or PagerDuty receiver); None: listed, not sent to by Loopgate
    receiver: Name | None = None

    @field_validator("address")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in "\r\n\x00"):
            raise ValueError("an address is one line without surrounding spaces")
        return value


class Person(Strict):
    name: str = Field(default="", max_length=255, description="For people reading the file, the API and the console")
    channels: list[Channel] = Field(default_factory=list, max_length=20)


class ActiveHours(Strict):
    """Local hours a layer covers: from `from` up to `to` (wrapping past midnight when `to` <= `from`)."""

    from_: str = Field(alias="from")
    to: str

    @model_validator(mode="after")
    def _valid(self) -> Self:
        _clock_time(self.from_)
        _clock_time(self.to)
        if self.from_ == self.to:
            raise ValueError("from and to are equal: leave active out to cover every hour")
        return self

    def covers(self, local: dt.time) -> bool:
        start, end = _clock_time(self.from_), _clock_time(self.to)
        wall = local.replace(tzinfo=None, second=0, microsecond=0)
        return start <= wall < end if start < end else wall >= start or wall < end


class Layer(Strict):
    name: str = Field(default="", max_length=255)
    rotation: Literal["daily", "weekly"]
    start: dt.date
    handoff: str = "09:00"
    people: list[Name] = Field(min_length=1, max_length=1000)
    active: ActiveHours | None = None

    @field_validator("handoff")
    @classmethod
    def _handoff(cls, value: str) -> str:
        _clock_time(value)
        return value

    @property
    def handoff_time(self) -> dt.time:
        return _clock_time(self.handoff)

    @property
    def days_per_turn(self) -> int:
        return 1 if self.rotation == "daily" else 7


class Override(Strict):
    person: Name
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Schedule(Strict):
    time_zone: str = Field(min_length=1, max_length=64)
    layers: list[Layer] = Field(min_length=1, max_length=20)
    overrides: list[Override] = Field(default_factory=list, max_length=1000)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"{value!r} is not an IANA time zone (such as Europe/London)") from None
        return value

    @field_validator("overrides")
    @classmethod
    def _no_overlap(cls, value: list[Override]) -> list[Override]:
        ordered = sorted(enumerate(value), key=lambda item: item[1].start)
        for (i, earlier), (j, later) in itertools.pairwise(ordered):
            if later.start < earlier.end:
                first, second = sorted((i, j))
                raise ValueError(f"overrides {first} and {second} overlap: one person at a time")
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class SchedulesConfig(Strict):
    people: dict[Name, Person] = Field(default_factory=dict, max_length=10000)
    schedules: dict[Name, Schedule] = Field(default_factory=dict, max_length=1000)

    @model_validator(mode="after")
    def _known_people(self) -> Self:
        for name, schedule in self.schedules.items():
            for number, layer in enumerate(schedule.layers):
                for i, person in enumerate(layer.people):
                    if person not in self.people:
                        raise ValueError(f"schedules.{name}.layers.{number}.people.{i}: no person named {person!r}")
            for number, override in enumerate(schedule.overrides):
                if override.person not in self.people:
                    raise ValueError(f"schedules.{name}.overrides.{number}.person: no person named {override.person!r}")
        return self


def load_schedules(path: Path | None) -> SchedulesConfig:
    """The schedules file; no file: no people and no schedules."""
    if path is None:
        return SchedulesConfig()
    return load_toml(path, SchedulesConfig, error=SchedulesError)
