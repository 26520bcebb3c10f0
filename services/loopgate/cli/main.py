"""`loopgate`: one command, a subcommand per service. The tools around them (simulator, evaluator,
benchmark, demo report) are `loopgate-tools`, a separate package kept out of the runtime install."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from loopgate.cli.refusals import kafka_refusals
from loopgate.common.logging import configure_logging
from loopgate.common.settings import get_settings

app = typer.Typer(
    help="Loopgate: human-in-the-loop exception handling beside ad-tech automation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schema files generated from the contract models.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")

LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning, error")]


@topics_app.command("create")
def topics_create(
    with_upstream: Annotated[
        bool, typer.Option("--with-upstream", help="Also create the upstream topics (a local or test stack).")
    ] = False,
) -> None:
    """Create Loopgate's own topics and the detector's changelogs that do not exist yet (replicated as
    the settings say), then check every topic the detector needs; exit 1 naming each mismatch."""
    from loopgate.common.kafka import COMPACTED, check_topics, ensure_topics, wait_for_broker
    from loopgate.detector.app import internal_topics

    configure_logging()
    settings = get_settings()
    wanted = settings.topic_partitions() if with_upstream else settings.own_topic_partitions()
    changelogs = internal_topics(settings)
    with kafka_refusals("topics create"):
        asyncio.run(wait_for_broker(settings))
        asyncio.run(ensure_topics(settings, wanted))
        asyncio.run(ensure_topics(settings, changelogs, configs=COMPACTED))
        problems = asyncio.run(check_topics(settings, changelogs))
    for name, partitions in {**wanted, **changelogs}.items():
        typer.echo(f"{name}\t{partitions} partitions")
    if problems:
        typer.echo("topics create: the existing topics do not fit what Loopgate needs:", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)


@app.command()
def detector(log_level: LogLevel = "info") -> None:
    """Run a detector worker (faust). Start N of them to share the partitions."""
    from loopgate.detector.app import run_worker
    from loopgate.detector.config import ConfigError

    try:
        with kafka_refusals("detector"):
            run_worker(get_settings(), loglevel=log_level)
    except ConfigError as err:
        typer.echo(f"detector: refusing to start, bad detection configuration: {err}", err=True)
        raise typer.Exit(2) from None


@app.command()
def dispatcher(log_level: LogLevel = "info") -> None:
    """Deliver every exception on the `exceptions` topic to the resolution API."""
    from loopgate.dispatcher.service import run_dispatcher

    configure_logging(log_level)
    with kafka_refusals("dispatcher"):
        asyncio.run(run_dispatcher(get_settings()))


@schemas_app.command("generate")
def schemas_generate() -> None:
    """Write schemas/jsonschema/*.json from the pydantic models."""
    from loopgate_schemas import jsonschema

    for path in jsonschema.write():
        typer.echo(str(path))


@schemas_app.command("check")
def schemas_check() -> None:
    """Exit 1 when the committed JSON Schema files differ from the models."""
    from loopgate_schemas import jsonschema

    problems = jsonschema.stale()
    if problems:
        typer.echo(f"stale JSON Schema files (run `loopgate schemas generate`): {', '.join(problems)}", err=True)
        raise typer.Exit(1)
    typer.echo("JSON Schema files are up to date")


def _register_service_commands() -> None:
    """The API's own typer commands, owned by its package; the detector's tuning command."""
    from loopgate.cli.api import app as api_app
    from loopgate.cli.tune import tune

    app.add_typer(api_app, name="api", help="The resolution API: serve, migrate, tokens.")
    app.command("tune")(tune)


_register_service_commands()


def _register_export_command() -> None:
    from loopgate.cli.export import export_command

    app.command("export")(export_command)


_register_export_command()


def _register_ops_commands() -> None:
    from loopgate.cli.ops import app as ops_app

    app.add_typer(ops_app, name="ops")


_register_ops_commands()


if __name__ == "__main__":
    app()
