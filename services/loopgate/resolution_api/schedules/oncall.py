"""Who is on call at a moment (pure functions of the schedules and a time, the caller's clock).

A layer's turns start at its hand-off's local time, so a 09:00 hand-off in Europe/London is 08:00
UTC in summer and 09:00 UTC in winter: turns are counted in local days, never in 24-hour spans. The
person on call is the override's during an override, else the last layer active at that local
time, else nobody."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loopgate.resolution_api.schedules.config import Layer, Schedule, SchedulesConfig


@dataclass(frozen=True, slots=True)
class OnCall:
    """The person on call in a schedule at a time, and why (`layer` name or 'override')."""

    schedule: str
    person: str | None
    source: str  # "override", "layer:<index>" or "nobody"
    layer: str | None = None
    until: dt.datetime | None = None  # when this turn or override ends (UTC); None: not known (active hours)


def _local_handoff(layer: Layer, day: dt.date, schedule: Schedule) -> dt.datetime:
    """The hand-off on a local day, as a UTC time (a hand-off inside a spring-forward gap is taken
    at the wall time zoneinfo gives it, fold 0)."""
    return dt.datetime.combine(day, layer.handoff_time, tzinfo=schedule.zone).astimezone(dt.UTC)


def turn_of(layer: Layer, schedule: Schedule, at: dt.datetime) -> tuple[int, dt.datetime] | None:
    """(the index into layer.people of the person whose turn it is at `at`, when that turn ends);
    None before the layer's first hand-off."""
    local = at.astimezone(schedule.zone)
    days = (local.date() - layer.start).days
    if local.time().replace(tzinfo=None) < layer.handoff_time:
        days -= 1  # before today's hand-off: still yesterday's turn
    if days < 0:
        return None
    turn = days // layer.days_per_turn
    next_day = layer.start + dt.timedelta(days=(turn + 1) * layer.days_per_turn)
    return turn % len(layer.people), _local_handoff(layer, next_day, schedule)


def on_call(config: SchedulesConfig, schedule_name: str, at: dt.datetime) -> OnCall:
    """Who is on call in `schedule_name` at `at` (an aware time). KeyError for an unknown schedule."""
    schedule = config.schedules[schedule_name]
    for override in schedule.overrides:
        if override.start <= at < override.end:
            return OnCall(schedule_name, override.person, "override", until=override.end.astimezone(dt.UTC))
    local = at.astimezone(schedule.zone).time()
    for index in range(len(schedule.layers) - 1, -1, -1):
        layer = schedule.layers[index]
        if layer.active is not None and not layer.active.covers(local):
            continue
        turn = turn_of(layer, schedule, at)
        if turn is None:
            continue
        person, until = turn
        # an override starting before the turn ends cuts it short
        starts = [o.start.astimezone(dt.UTC) for o in schedule.overrides if at < o.start < until]
        return OnCall(
            schedule_name,
            layer.people[person],
            f"layer:{index}",
            layer=layer.name or None,
            until=None if layer.active is not None else min([until, *starts]),
        )
    return OnCall(schedule_name, None, "nobody")


def everyone_on_call(config: SchedulesConfig, at: dt.datetime) -> list[OnCall]:
    """Who is on call now in every schedule, by schedule name."""
    return [on_call(config, name, at) for name in sorted(config.schedules)]
