"""How a command ends when Kafka cannot work: the reason, naming the setting, and exit status 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer


@contextmanager
def kafka_refusals(command: str) -> Iterator[None]:
    """A Kafka setting that cannot work, or a broker that refuses us, ends the command with its
    reason (naming the setting) and exit status 2, not a traceback or a retry loop."""
    from loopgate.common.kafka import KafkaSettingsError, KafkaStartupError

    try:
        yield
    except KafkaSettingsError as err:
        typer.echo(f"{command}: refusing to start, bad Kafka setting: {err}", err=True)
        raise typer.Exit(2) from None
    except KafkaStartupError as err:
        typer.echo(f"{command}: refusing to start, the broker refused the connection: {err}", err=True)
        raise typer.Exit(2) from None
