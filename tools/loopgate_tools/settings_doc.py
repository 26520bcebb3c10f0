"""The README's settings table, generated from the settings class (`loopgate-tools settings-doc`).

Every `Settings` field is one row: its environment variable, its default and its description.
The table sits in README.md between two markers; a test fails when it is stale.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from loopgate.common.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return "(unset)"
    if isinstance(value, dict):
        return "(see below)" if value else "{}"
    return f"`{json.dumps(value) if isinstance(value, bool) else value}`"


def settings_table() -> str:
    rows = ["| variable | default | what it is |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `LOOPGATE_{name.upper()}` | {_default(field)} | {description} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    """`readme` with the table between the markers replaced by the current one."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"README.md has no {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{settings_table()}\n{END}", readme)


def write(path: Path = README) -> bool:
    """Rewrite the table in place; True when it changed."""
    before = path.read_text()
    after = render(before)
    if after != before:
        path.write_text(after)
    return after != before
