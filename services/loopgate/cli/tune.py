"""`loopgate tune`: read the operators' verdicts, print the threshold changes they support as a diff
to detection.toml with the evidence for each. It writes nothing: a human reviews the diff, applies it
(`git apply`, or by hand) and restarts the detector, which loads the approved file at start.

Verdicts come from a newline-delimited JSON file (`--verdicts`): the training-data export
(`GET /v1/export/training-data`), whose rows name the event's platform, or outcome
CloudEvents as published on exception-outcomes (a dump of the topic); or straight from the topic
(`--from-topic`). Outcomes carry no platform, so per-platform proposals need the export.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from loopgate.detector.config import DEFAULT_CONFIG_PATH, ConfigError, load_detection_config
from loopgate.detector.tuning import TuningPolicy, Verdict, describe, proposal_diff, propose, verdict_from_json


def read_verdicts(lines: Iterable[bytes | str]) -> tuple[list[Verdict], int]:
    """The verdicts in these NDJSON lines, and how many non-blank lines were not one."""
    verdicts: list[Verdict] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            verdict = verdict_from_json(orjson.loads(line))
        except orjson.JSONDecodeError:
            verdict = None
        if verdict is None:
            skipped += 1
        else:
            verdicts.append(verdict)
    return verdicts, skipped


def _topic_lines() -> Iterator[bytes]:
    from loopgate.common.kafka import read_topic, wait_for_broker
    from loopgate.common.settings import get_settings
    from loopgate_schemas import topics

    settings = get_settings()
    asyncio.run(wait_for_broker(settings, give_up_after=30))
    for record in asyncio.run(read_topic(settings, topics.OUTCOMES)):
        if record.value:
            yield record.value


def tune(
    verdicts: Annotated[
        Path | None,
        typer.Option(
            "--verdicts",
            help="NDJSON of training-data export rows or outcome CloudEvents ('-' for stdin).",
            allow_dash=True,
        ),
    ] = None,
    from_topic: Annotated[
        bool, typer.Option("--from-topic", help="Read every outcome on exception-outcomes instead (no platforms).")
    ] = False,
    config_path: Annotated[
        Path | None,
        typer.Option("--config", help="The detection.toml to change (default: LOOPGATE_DETECTION_CONFIG or packaged)."),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only verdicts resolved at or after this time (RFC 3339, with an offset).")
    ] = None,
    min_verdicts: Annotated[int, typer.Option(min=1, help="Decided verdicts a scope needs.")] = 20,
    min_verdicts_critical: Annotated[int, typer.Option(min=1, help="... for a critical rule.")] = 100,
) -> None:
    """Propose threshold changes from the verdicts: a diff to detection.toml with its evidence. Writes nothing."""
    if (verdicts is None) == (not from_topic):
        typer.echo("tune: give exactly one of --verdicts FILE or --from-topic", err=True)
        raise typer.Exit(2)
    if config_path is None:
        from loopgate.common.settings import get_settings

        config_path = get_settings().detection_config or DEFAULT_CONFIG_PATH
    try:
        config = load_detection_config(config_path)
    except ConfigError as err:
        typer.echo(f"tune: bad detection configuration: {err}", err=True)
        raise typer.Exit(2) from None
    if from_topic:
        from loopgate.cli.refusals import kafka_refusals

        with kafka_refusals("tune"):
            history, skipped = read_verdicts(_topic_lines())
    elif str(verdicts) == "-":
        history, skipped = read_verdicts(sys.stdin.buffer)
    else:
        assert verdicts is not None
        with verdicts.open("rb") as lines:
            history, skipped = read_verdicts(lines)
    if since is not None:
        if since.tzinfo is None:
            typer.echo("tune: --since needs a UTC offset (e.g. 2026-11-01T00:00:00Z)", err=True)
            raise typer.Exit(2)
        history = [v for v in history if v.resolved_at >= since]
    policy = TuningPolicy(min_verdicts=min_verdicts, min_verdicts_critical=min_verdicts_critical)
    result = propose(config, history, policy)
    note = f", {skipped} lines skipped (not a verdict with observed values)" if skipped else ""
    typer.echo(f"# loopgate tune: {len(history)} verdicts read{note}")
    typer.echo(describe(result), nl=False)
    diff = proposal_diff(config_path.read_text(), result.proposals, _shown_path(config_path))
    if diff:
        typer.echo("")
        typer.echo(diff, nl=False)


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
