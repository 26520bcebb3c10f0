"""Where the resolution API reads the time: a `Clock` is handed down from `create_app` (the
composition root) to the intake, the sweeper and every transition, so tests advance a fake one
instead of waiting on the wall clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]  # the current time, timezone-aware (UTC)
Monotonic = Callable[[], float]  # seconds from an arbitrary start that never goes back (time.monotonic)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
