"""Where the detector's CPU time goes: the stages of a batch, timed once per batch, not per event.

A batch runs its stages one after the other over all of its messages (processing.Detector.
process_batch, then the worker's produce step), so a lap of the event-loop thread's CPU clock
between two stages costs one clock read per stage and batch. `loopgate_detector_stage_cpu_seconds_total`
adds them up; `make bench` divides them by the events to show where an event's time goes. CPU time,
not wall time: waiting for the broker's acknowledgements is not work (what other tasks of the loop
do meanwhile, such as the producer's sender, is counted in the stage that waits).
"""

from __future__ import annotations

import time
from typing import Final

from loopgate.common import metrics

STAGES: Final = ("validate", "rules", "baselines", "sampling", "records", "produce", "commit")


class StageClock:
    """Laps of the current thread's CPU clock, each added to its stage's counter."""

    __slots__ = ("_counters", "_last")

    def __init__(self) -> None:
        self._counters = {stage: metrics.DETECTOR_STAGE_CPU.labels(stage) for stage in STAGES}
        self._last = time.thread_time()

    def start(self) -> None:
        """Begin timing here: what the thread did since the last lap belongs to no stage."""
        self._last = time.thread_time()

    def lap(self, stage: str) -> None:
        """The CPU time since the last lap (or start) was spent in `stage`."""
        now = time.thread_time()
        self._counters[stage].inc(now - self._last)
        self._last = now


class NoClock(StageClock):
    """Timing nothing (the evaluator, the tools and the reference path)."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def start(self) -> None:
        pass

    def lap(self, stage: str) -> None:
        pass


NO_CLOCK: Final = NoClock()
