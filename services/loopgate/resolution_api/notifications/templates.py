"""Receivers' message templates: Jinja2 in a sandbox (ImmutableSandboxedEnvironment), one per
receiver (`template_file`, and `subject_template` for email), else the defaults shipped in
templates/. Each is compiled and rendered against a sample exception when the API starts: a
syntax error, an undefined variable (StrictUndefined), a refused attribute (the sandbox: no
`__class__`, no `mro`, no method that changes data) or an output over its bound refuses the
start, naming the receiver and the line.

What a template sees is plain data (strings, numbers, a dict of the exception), never a row or
an object of ours. Escaping is the channel's: HTML email autoescapes; a chat message escapes
every value for Slack's mrkdwn (finalize); JSON bodies are built around the rendered text by
json.dumps. Output is bounded per part: the sample may not exceed it, a real one is cut there.
Multiplying strings or lists past the bound, huge powers and `range` beyond a budget are
refused by the sandbox too, so a template cannot build a huge value before it is output.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from loopgate.common.text import one_line

MAX_RANGE_STEPS = 10_000  # all range() of one rendering together
MAX_POWER = 64
DEFAULTS = "loopgate.resolution_api.notifications"


class TemplateError(Exception):
    """A template cannot be used: the message names the part and the line."""


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_RANGE_STEPS

    def range(self, *args: int) -> Iterator[int]:
        steps = range(*args)
        if len(steps) > self.left:
            raise SecurityError(f"range() of {len(steps)} steps is over the template's budget")
        self.left -= len(steps)
        return iter(steps)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, less what builds huge values from small ones."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, bound: int, **options: Any) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, **options)
        self.bound = bound
        for name in ("center", "indent", "wordwrap", "format", "filesizeformat", "xmlattr"):
            self.filters.pop(name, None)

    def call_binop(self, context: jinja2.runtime.Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > self.bound:
                        raise SecurityError("multiplying past the template's output bound")
            return operator.mul(left, right)
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER:
                raise SecurityError(f"a power above {MAX_POWER}")
            return operator.pow(left, right)
        if isinstance(left, str):
            raise SecurityError("string formatting with % is not allowed in templates")
        return operator.mod(left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > __self.bound:
                raise SecurityError("a number argument above the template's output bound")
        return super().call(__context, __obj, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class Part:
    """One compiled template: what it renders and how long its output may be."""

    name: str  # e.g. receivers.mail.template_file (/etc/loopgate/mail.html.j2)
    template: jinja2.Template
    bound: int
    single_line: bool

    def render(self, context: dict[str, Any], *, strict: bool = False) -> str:
        """The text, cut at the bound (`strict`, for the start's check: over the bound is an error)."""
        pieces: list[str] = []
        size = 0
        budget = _Budget()
        for piece in self.template.generate(**context, range=budget.range):
            pieces.append(piece)
            size += len(piece)
            if size > self.bound:
                if strict:
                    raise TemplateError(f"{self.name}: renders more than {self.bound} characters")
                break
        text = "".join(pieces)
        text = one_line(text, self.bound) if self.single_line else text[: self.bound]
        return text


def _default_source(file: str) -> str:
    return (resources.files(DEFAULTS) / "templates" / file).read_text(encoding="utf-8")


def compile_part(
    *,
    name: str,
    source: str,
    bound: int,
    autoescape: bool = False,
    finalize: Callable[[Any], Any] | None = None,
    single_line: bool = False,
) -> Part:
    env = _Sandbox(bound, autoescape=autoescape, finalize=finalize, keep_trailing_newline=False)
    try:
        template = env.from_string(source)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{name}: line {err.lineno}: {err.message}") from None
    return Part(name=name, template=template, bound=bound, single_line=single_line)


def load_part(
    *, name: str, file: Path | None, default: str, bound: int, inline: str | None = None, **options: Any
) -> Part:
    """The receiver's template (a file, or inline text) or the shipped default."""
    if inline is not None:
        source = inline
    elif file is not None:
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise TemplateError(f"{name}: {file}: cannot be read ({type(err).__name__})") from None
        name = f"{name} ({file})"
    else:
        source = _default_source(default)
        name = f"{name} (default {default})"
    return compile_part(name=name, source=source, bound=bound, **options)


def check(part: Part, context: dict[str, Any]) -> None:
    """Render the part against the sample; TemplateError naming the line when it cannot."""
    try:
        part.render(context, strict=True)
    except TemplateError:
        raise
    except Exception as err:
        raise TemplateError(
            f"{part.name}: line {_line_of(err)}: {type(err).__name__}: {one_line(str(err), 300)}"
        ) from None


def _line_of(err: BaseException) -> str:
    """The template line an error was raised at (Jinja rewrites tracebacks to the template's lines)."""
    line = "?"
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line


SAMPLE_TIME = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)


def sample_context(url: str = "https://loopgate.example/console/exceptions/exc_sample") -> dict[str, Any]:
    """What a template sees for a sample exception (the start's check)."""
    return {
        "exception": {
            "id": "exc_sample",
            "rule_id": "overspend",
            "severity": "critical",
            "client_id": "northwind",
            "queue": "default",
            "source": "detector",
            "subject": "campaign:123",
            "summary": "Campaign 123 spent 140% of its daily budget <b>&</b>",
            "status": "open",
            "occurrences": 3,
            "first_seen": SAMPLE_TIME.isoformat(),
            "assignee": None,
        },
        "event": "opened",
        "headline": "opened",
        "level": None,
        "sla": None,
        "url": url,
        "receiver": "sample",
    }
