"""The labelling tools' exports, streamed like the training export (export.pages: keyset pages,
each its own short read, scoped to the caller by access/scoping.py): Label Studio tasks as one
JSON array, and the Hugging Face dataset's rows as JSON lines (labelling.py makes each item).

A row that cannot be exported is set aside (logged with its id and reason, counted in
`loopgate_rows_set_aside_total{where}`) and the export goes on; a filter that matches nothing
gives an empty array or an empty file, never an error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Final

import orjson

from loopgate.common import metrics
from loopgate.resolution_api.db.engine import Database
from loopgate.resolution_api.db.models import ExceptionRow
from loopgate.resolution_api.outcomes import export, labelling

LABEL_STUDIO_MEDIA_TYPE: Final = "application/json"
LABEL_STUDIO_CONFIG_MEDIA_TYPE: Final = "application/xml"
DATASET_MEDIA_TYPE: Final = export.MEDIA_TYPE
log = logging.getLogger(__name__)


def _rendered(
    rows: Iterable[ExceptionRow], render: Callable[[ExceptionRow], dict[str, Any]], where: str
) -> list[bytes]:
    items = []
    for row in rows:
        try:
            items.append(orjson.dumps(render(row)))
        except Exception as err:  # one bad row: set aside, never the whole export cut short
            reason = f"{type(err).__name__}: {err}"[:300].replace("\n", " ")
            metrics.ROWS_SET_ASIDE.labels(where).inc()
            log.warning("%s: exception %r set aside: %s", where, row.id, reason)
    return items


async def label_studio_tasks(*, db: Database, filters: export.ExportFilters, page_rows: int) -> AsyncIterator[bytes]:
    """A JSON array of Label Studio tasks (what its import takes), a page of tasks per chunk."""
    yield b"["
    first = True
    async for page in export.pages(db=db, filters=filters, page_rows=page_rows):
        items = _rendered(page, labelling.label_studio_task, "label_studio_export")
        if items:
            yield (b"\n" if first else b",\n") + b",\n".join(items)
            first = False
    yield b"]\n" if first else b"\n]\n"


async def dataset_lines(*, db: Database, filters: export.ExportFilters, page_rows: int) -> AsyncIterator[bytes]:
    """The Hugging Face dataset's rows, one JSON object a line, a page of lines per chunk."""
    async for page in export.pages(db=db, filters=filters, page_rows=page_rows):
        items = _rendered(page, labelling.dataset_row, "dataset_export")
        if items:
            yield b"\n".join(items) + b"\n"
