"""`loopgate export`: the training-data export, read from the resolution API over HTTP with a
bearer token (an operator's or admin's), written as NDJSON to a file or stdout.

Over HTTP rather than from the database: a model owner needs no database credentials or network
path to it, the API's roles decide who may export, and the records and filters are the API's own
(one implementation, no second reader to drift from it)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, BinaryIO

import httpx
import typer

from loopgate.common.errors import LoopgateError
from loopgate.common.settings import get_settings
from loopgate_schemas.outcomes import Decision

EXPORT_PATH = "/v1/export/training-data"


class ExportFailed(LoopgateError):
    """The API refused the export or could not be reached; the message says which and why."""


async def export_to(
    out: BinaryIO, *, client: httpx.AsyncClient, params: Sequence[tuple[str, str]], path: str = EXPORT_PATH
) -> int:
    """Stream the export into `out` chunk by chunk (never held whole); the number of lines."""
    records = 0
    try:
        async with client.stream("GET", path, params=httpx.QueryParams(list(params))) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")[:500]
                raise ExportFailed(f"the API refused the export ({response.status_code}): {body}")
            async for chunk in response.aiter_bytes():
                out.write(chunk)
                records += chunk.count(b"\n")
    except httpx.HTTPError as err:
        raise ExportFailed(f"cannot read {client.base_url}{path}: {type(err).__name__}: {err}") from None
    return records


def _params(
    since: dt.datetime | None,
    until: dt.datetime | None,
    rule_id: str | None,
    client_id: str | None,
    source: str | None,
    model: str | None,
    decisions: list[Decision],
) -> list[tuple[str, str]]:
    params = [
        (name, value.isoformat() if isinstance(value, dt.datetime) else value)
        for name, value in (
            ("since", since),
            ("until", until),
            ("rule_id", rule_id),
            ("client_id", client_id),
            ("source", source),
            ("model", model),
        )
        if value is not None
    ]
    return params + [("decision", d.value) for d in decisions]


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)


def export_command(
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout")] = "-",
    token: Annotated[
        str, typer.Option("--token", envvar="LOOPGATE_EXPORT_TOKEN", help="An operator's or admin's API token")
    ] = "",
    url: Annotated[str | None, typer.Option("--url", help="The API's base URL (default: LOOPGATE_API_URL)")] = None,
    since: Annotated[
        dt.datetime | None, typer.Option(help="Resolved at or after (UTC unless an offset is given)")
    ] = None,
    until: Annotated[dt.datetime | None, typer.Option(help="Resolved before (default: now)")] = None,
    rule_id: Annotated[str | None, typer.Option("--rule-id")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id")] = None,
    source: Annotated[str | None, typer.Option(help="The source topic")] = None,
    model: Annotated[str | None, typer.Option(help="The event's data.model")] = None,
    decision: Annotated[list[Decision] | None, typer.Option(help="Repeat to allow several")] = None,
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="ndjson (training records), or a folder for a labelling tool: label-studio (tasks.json, "
            "label_config.xml) or huggingface (data.jsonl, README.md dataset card)",
        ),
    ] = "ndjson",
) -> None:
    """Export decided exceptions as training data (NDJSON, one record per line; README: training data)."""
    if not token:
        typer.echo("export: no token: pass --token or set LOOPGATE_EXPORT_TOKEN", err=True)
        raise typer.Exit(2)
    params = _params(_aware(since), _aware(until), rule_id, client_id, source, model, decision or [])
    base_url = url or get_settings().api_url
    if export_format != "ndjson":
        _export_folder(export_format, output, token=token, base_url=base_url, params=params)
        return

    async def run(out: BinaryIO) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=httpx.Timeout(30.0)) as client:
            return await export_to(out, client=client, params=params)

    try:
        if output == "-":
            records = asyncio.run(run(sys.stdout.buffer))
        else:
            partial = Path(f"{output}.part")  # a failed export never leaves a file that looks complete
            with partial.open("wb") as out:
                records = asyncio.run(run(out))
            os.replace(partial, output)
    except ExportFailed as err:
        typer.echo(f"export: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"exported {records} records to {'stdout' if output == '-' else output}", err=True)


def _export_folder(
    export_format: str, output: str, *, token: str, base_url: str, params: list[tuple[str, str]]
) -> None:
    from loopgate.cli.labelling_export import ExportFormat, export_folder

    try:
        chosen = ExportFormat(export_format)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        typer.echo(f"export: --format {export_format!r} is not one of {choices}", err=True)
        raise typer.Exit(2) from None
    if output == "-":
        typer.echo(f"export: --format {chosen.value} writes a folder: name it with -o", err=True)
        raise typer.Exit(2)

    async def run() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=httpx.Timeout(30.0)) as client:
            return await export_folder(
                Path(output), export_format=chosen, client=client, params=params, now=dt.datetime.now(dt.UTC)
            )

    try:
        count = asyncio.run(run())
    except ExportFailed as err:
        typer.echo(f"export: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"exported {count} {'tasks' if chosen.value == 'label-studio' else 'rows'} to {output}", err=True)
