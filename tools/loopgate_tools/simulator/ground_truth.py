"""Ground truth: what the detector must make of each generated event, one JSON object a line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from loopgate_tools.simulator.generator import SimEvent


def ground_truth_record(event: SimEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "topic": event.topic,
        "event_type": event.event_type,
        "subject": event.subject,
        "expected_rules": list(event.expected_rules),
    }


def write_ground_truth(path: Path | str, events: Iterable[SimEvent]) -> int:
    """Write one line per event to `path`; return how many were written."""
    with Path(path).open("wb") as fh:
        return sum(1 for _ in recording(events, fh))


def recording(events: Iterable[SimEvent], fh: IO[bytes]) -> Iterator[SimEvent]:
    """Pass the events through, writing each one's ground truth line as it goes (for a stream that
    is published while it is generated, so the file holds exactly what was handed on)."""
    for event in events:
        fh.write(orjson.dumps(ground_truth_record(event), option=orjson.OPT_APPEND_NEWLINE))
        yield event


def read_ground_truth(path: Path | str) -> Iterator[dict[str, object]]:
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)
