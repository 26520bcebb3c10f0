"""`loopgate export --format label-studio|huggingface -o FOLDER`: the labelling tools' exports,
read from the API over HTTP like the NDJSON export (cli/export.py), written as a folder:

- label-studio: `tasks.json` (the tasks, to import) and `label_config.xml` (the project's
  labeling configuration they are made for);
- huggingface: `data.jsonl` (the rows) and `README.md` (the dataset card: fields, label meanings,
  time range, filters), so `datasets.load_dataset("FOLDER")` reads it with its declared features.

The folder is built as `FOLDER.part` and renamed when complete: a failed export never leaves a
folder that looks complete. An existing FOLDER is refused, never overwritten."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

import anyio
import anyio.to_thread
import httpx
import orjson

from loopgate.cli.export import ExportFailed, export_to
from loopgate.resolution_api.outcomes.dataset_card import CARD_FILE, DATA_FILE, DatasetSummary, render_card

LABEL_STUDIO_PATH: Final = "/v1/export/label-studio"
LABEL_STUDIO_CONFIG_PATH: Final = "/v1/export/label-studio/config"
DATASET_PATH: Final = "/v1/export/huggingface"
TASKS_FILE: Final = "tasks.json"
CONFIG_FILE: Final = "label_config.xml"


class ExportFormat(enum.StrEnum):
    NDJSON = "ndjson"
    LABEL_STUDIO = "label-studio"
    HUGGINGFACE = "huggingface"


def _count_tasks(path: Path) -> int:
    with path.open("rb") as tasks:  # one task a line between the brackets (the API's layout)
        return sum(1 for line in tasks if line.startswith(b"{"))


def _summary(path: Path) -> DatasetSummary:
    summary = DatasetSummary()
    with path.open("rb") as rows:
        for line in rows:
            if line.strip():
                summary.add(orjson.loads(line))
    return summary


async def _get_text(client: httpx.AsyncClient, path: str) -> bytes:
    try:
        response = await client.get(path)
    except httpx.HTTPError as err:
        raise ExportFailed(f"cannot read {client.base_url}{path}: {type(err).__name__}: {err}") from None
    if response.status_code != 200:
        raise ExportFailed(f"the API refused {path} ({response.status_code}): {response.text[:500]}")
    return response.content


def _open_for_writing(path: Path) -> BinaryIO:
    return path.open("wb")


async def export_folder(
    folder: Path,
    *,
    export_format: ExportFormat,
    client: httpx.AsyncClient,
    params: Sequence[tuple[str, str]],
    now: dt.datetime,
) -> int:
    """Write the export's folder (via FOLDER.part); the number of tasks or rows."""
    target = anyio.Path(folder)
    if await target.exists():
        raise ExportFailed(f"{folder} exists already: name a new folder")
    partial = Path(f"{folder}.part")
    await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, partial, ignore_errors=True))
    await anyio.Path(partial).mkdir(parents=True)
    try:
        if export_format is ExportFormat.LABEL_STUDIO:
            await anyio.Path(partial / CONFIG_FILE).write_bytes(await _get_text(client, LABEL_STUDIO_CONFIG_PATH))
            with await anyio.to_thread.run_sync(_open_for_writing, partial / TASKS_FILE) as out:
                await export_to(out, client=client, params=params, path=LABEL_STUDIO_PATH)
            count = await anyio.to_thread.run_sync(_count_tasks, partial / TASKS_FILE)
        else:
            with await anyio.to_thread.run_sync(_open_for_writing, partial / DATA_FILE) as out:
                await export_to(out, client=client, params=params, path=DATASET_PATH)
            summary = await anyio.to_thread.run_sync(_summary, partial / DATA_FILE)
            card = render_card(summary=summary, filters=params, exported_at=now, source_url=str(client.base_url))
            await anyio.Path(partial / CARD_FILE).write_text(card, encoding="utf-8")
            count = summary.rows
    except BaseException:
        await anyio.to_thread.run_sync(functools.partial(shutil.rmtree, partial, ignore_errors=True))
        raise
    await anyio.Path(partial).rename(target)
    return count
