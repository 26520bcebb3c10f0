"""Progress of the long commands (`bench`, `evaluate`, `simulate`), on stderr.

On a terminal it is a live rich progress bar. Anywhere else (a CI log, a pipe, a file) it is plain
lines: one when a stage starts, at most one every `plain_every` seconds while it runs, and one when
it ends, so a log never fills with per-tick redraws. Standard output is left alone: the commands'
tables and summaries still go there, unchanged, after the bar has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

Clock = Callable[[], float]

LIVE_REFRESH_SECONDS = 0.1  # a live bar redraws at most this often, however often it is updated


class Reporter:
    """Where a command reports its stages. `Reporter.stderr()` for a command, `Reporter.silent()`
    when nobody watches (library calls, tests), or a Console of one's own (tests record to a StringIO)."""

    def __init__(self, console: Console | None, *, plain_every: float = 30.0, clock: Clock = time.monotonic) -> None:
        self.console = console
        self.live = console is not None and console.is_terminal and not console.is_dumb_terminal
        self.plain_every = plain_every
        self.clock = clock
        self._bar: Progress | None = None

    @classmethod
    def stderr(cls) -> Reporter:
        return cls(Console(stderr=True, highlight=False))

    @classmethod
    def silent(cls) -> Reporter:
        return cls(None)

    def stage(self, description: str, total: float | None = None, unit: str = "events") -> Stage:
        """A step with `total` units to do (None: unknown; with `unit=""` too, nothing is counted, only
        time), shown until its `close()` (or the end of its `with`)."""
        return Stage(self, description, total, unit)

    def line(self, text: str) -> None:
        """One plain line (above the bar on a terminal)."""
        if self.console is not None:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the live bar (its last state stays on screen); call before writing to stdout."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _live_bar(self) -> Progress:
        if self._bar is None:
            assert self.console is not None
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=self.console,
                # stdout stays the command's own: tables and summaries that scripts and tests parse
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._bar.start()
        return self._bar


class Stage:
    """One step of a command: `update(completed)` or `advance(n)` as it goes, `close()` when done."""

    def __init__(self, reporter: Reporter, description: str, total: float | None, unit: str) -> None:
        self.reporter = reporter
        self.description = description
        self.total = total
        self.unit = unit
        self.completed: float = 0
        self.note = ""
        self.started = self._last_shown = reporter.clock()
        self.closed = False
        self._task: TaskID | None = None
        if reporter.live:
            self._task = reporter._live_bar().add_task(description, total=total, counts=self.counts())
        else:
            self.reporter.line(f"{description}: started" + (f" ({_number(total)} {unit})" if total else ""))

    def counts(self) -> str:
        """`1,200/10,000 events`, `1,200 events` without a total, plus the note (`1,100 acknowledged`)."""
        done = _number(self.completed)
        if self.total is not None:
            text = f"{done}/{_number(self.total)} {self.unit}"
        else:
            text = f"{done} {self.unit}" if self.unit else ""
        return ", ".join(part for part in (text, self.note) if part)

    def update(self, completed: float, *, note: str | None = None) -> None:
        self.completed = completed
        if note is not None:
            self.note = note
        now = self.reporter.clock()
        if self.reporter.live:
            if now - self._last_shown >= LIVE_REFRESH_SECONDS:
                self._last_shown = now
                self._show_live()
        elif now - self._last_shown >= self.reporter.plain_every:
            self._last_shown = now
            self.reporter.line(_joined(self.description, self._counts_with_share(), f"{now - self.started:.0f} s"))

    def advance(self, amount: float = 1) -> None:
        self.update(self.completed + amount)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        seconds = self.reporter.clock() - self.started
        if self.reporter.live:
            self._show_live()
            if self.reporter._bar is not None and self._task is not None:
                self.reporter._bar.stop_task(self._task)
        else:
            self.reporter.line(_joined(self.description, self.counts(), f"done in {seconds:.1f} s"))

    def __enter__(self) -> Stage:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _show_live(self) -> None:
        bar = self.reporter._bar
        if bar is not None and self._task is not None:
            bar.update(self._task, completed=self.completed, counts=self.counts())

    def _counts_with_share(self) -> str:
        if self.total:
            return f"{self.counts()} ({self.completed / self.total:.0%})"
        return self.counts()


def _joined(description: str, *parts: str) -> str:
    return f"{description}: " + ", ".join(part for part in parts if part)


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.1f}"
