"""The chaos suite's table: one row per scenario, printed at the end of the session and kept in a
file (`LOOPGATE_CHAOS_REPORT`, default .run/chaos-report.txt) so `make chaos` can show it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT_PATH = Path(os.environ.get("LOOPGATE_CHAOS_REPORT", ROOT / ".run" / "chaos-report.txt"))


@dataclass(frozen=True)
class Row:
    scenario: str
    published: int  # upstream messages published (a replay counts twice)
    expected: int  # distinct exception records the ground truth demands
    found: int  # expected records the end state holds
    lost: int
    duplicated: int | None  # a record held twice, or a fingerprint opened twice (None: not measured)
    unexpected: int  # records held that the ground truth does not demand
    topic_records: int  # records on `exceptions`, redeliveries included (at-least-once)
    settle_seconds: float  # from the end of the fault (or of publishing) until everything was committed

    @property
    def clean(self) -> bool:
        return self.lost == 0 and not self.duplicated and self.unexpected == 0


ROWS: list[Row] = []
COLUMNS = ("scenario", "published", "expected", "found", "lost", "duplicated", "unexpected", "on topic", "settle s")


def record(row: Row) -> Row:
    """Add a row to the session's table."""
    ROWS.append(row)
    return row


def table(rows: list[Row]) -> str:
    cells = [
        (
            r.scenario,
            str(r.published),
            str(r.expected),
            str(r.found),
            str(r.lost),
            "-" if r.duplicated is None else str(r.duplicated),
            str(r.unexpected),
            str(r.topic_records),
            f"{r.settle_seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(c) for c in column) for column in zip(COLUMNS, *cells, strict=False)]
    lines = [
        " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in (COLUMNS, *cells)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def write(rows: list[Row], path: Path = REPORT_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table(rows) + "\n")
    return path
