"""The dataset card (README.md) of a Hugging Face export: the columns and their types (the YAML
front matter `datasets` reads, so `load_dataset(<folder>)` gets the declared features, the label's
names included), what the labels mean, the time range the rows cover and the filters that chose
them. Made from the rows as written (`DatasetSummary.add` a row at a time), so it describes the
file beside it, not what was asked for."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from loopgate.resolution_api.outcomes.labelling import DATASET_FEATURES, LABEL_NAMES, NOT_JUDGED
from loopgate_schemas.outcomes import Decision

DATA_FILE: Final = "data.jsonl"
CARD_FILE: Final = "README.md"


@dataclass(slots=True)
class DatasetSummary:
    rows: int = 0
    first_resolved_at: str | None = None
    last_resolved_at: str | None = None
    decisions: Counter[str] = field(default_factory=Counter)
    labels: Counter[int] = field(default_factory=Counter)

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        resolved_at = str(row.get("resolved_at"))
        if self.first_resolved_at is None or resolved_at < self.first_resolved_at:
            self.first_resolved_at = resolved_at
        if self.last_resolved_at is None or resolved_at > self.last_resolved_at:
            self.last_resolved_at = resolved_at
        self.decisions[str(row.get("decision"))] += 1
        label = row.get("label")
        self.labels[label if isinstance(label, int) else NOT_JUDGED] += 1


def _yaml_features() -> list[str]:
    lines = ["dataset_info:", "  features:"]
    for name, dtype, _ in DATASET_FEATURES:
        lines.append(f"  - name: {name}")
        if dtype == "class_label":
            lines += ["    dtype:", "      class_label:", "        names:"]
            lines += [f"          '{i}': {label}" for i, label in enumerate(LABEL_NAMES)]
        else:
            lines.append(f"    dtype: {dtype}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_card(
    *, summary: DatasetSummary, filters: Sequence[tuple[str, str]], exported_at: dt.datetime, source_url: str
) -> str:
    """The README.md beside DATA_FILE."""
    front = [
        "---",
        "pretty_name: Loopgate verdicts",
        "tags:",
        "- human-in-the-loop",
        "- loopgate",
        "task_categories:",
        "- text-classification",
        "- tabular-classification",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {DATA_FILE}",
        *_yaml_features(),
        "---",
    ]
    given = "\n".join(f"- `{_cell(name)}` = `{_cell(value)}`" for name, value in filters) or "- none: every decision"
    if summary.rows:
        span = f"from {summary.first_resolved_at} to {summary.last_resolved_at} (resolution times)"
    else:
        span = "none: no decided exception matched the filters (`datasets` loads no empty split: widen them)"
    decisions = ", ".join(f"{d.value} {summary.decisions[d.value]}" for d in Decision)
    labels = ", ".join(
        f"{name} ({value}) {summary.labels[value]}"
        for value, name in [(1, LABEL_NAMES[1]), (0, LABEL_NAMES[0]), (NOT_JUDGED, "not judged")]
    )
    fields = "\n".join(f"| `{name}` | {dtype} | {_cell(meaning)} |" for name, dtype, meaning in DATASET_FEATURES)
    body = f"""
# Loopgate verdicts

People's decisions on the exceptions Loopgate's detector flagged: one row per decided exception,
exported from {source_url} at {exported_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}.

- **Rows:** {summary.rows} in `{DATA_FILE}` (one JSON object a line).
- **Time range:** {span}.
- **Decisions:** {decisions}.
- **Labels:** {labels}.

## Filters

{given}

## Labels

`label` says whether the detector's flag was right, as the person judged it:

| label | name | decisions | means |
| --- | --- | --- | --- |
| 1 | `{LABEL_NAMES[1]}` | confirmed, corrected | the flag was right: the output was wrong (and, corrected, fixed) |
| 0 | `{LABEL_NAMES[0]}` | false_positive | the flag was wrong: the output was right, the rule should not have fired |
| -1 | (not judged) | dismissed, escalated | no verdict on the flag: not worth acting on, or handed elsewhere |

Leave the -1 rows out when training a classifier of the flag: `ds.filter(lambda r: r["label"] >= 0)`.

## Fields

| field | type | meaning |
| --- | --- | --- |
{fields}

## Loading

```python
import datasets
ds = datasets.load_dataset("json", data_files="{DATA_FILE}", split="train")
# or, with the declared features above (label names included):
ds = datasets.load_dataset("path/to/this/folder", split="train")
```
"""
    return "\n".join(front) + "\n" + body
