"""Chaos fixtures: a full stack per scenario, a private broker for the scenario that stops it, and
the table of every scenario's result printed at the end of the session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopgate_tools.processes import free_port
from tests.chaos import report
from tests.chaos.harness import SESSION_TIMEOUT_SECONDS, ChaosRun, PrivateBroker
from tests.fixtures.services import Stack


@pytest.fixture
def chaos(stack_factory: Callable[..., Stack]) -> ChaosRun:
    """The API, one detector and one dispatcher on fresh topics and a fresh database."""
    stack = stack_factory(detector_session_timeout_seconds=SESSION_TIMEOUT_SECONDS)
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)
    return ChaosRun(stack)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    data = tmp_path / "kafka"
    broker = PrivateBroker(
        {
            **os.environ,
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_DATA_DIR": str(data),
        }
    )
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(data, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if report.ROWS:
        path = report.write(report.ROWS)
        terminalreporter.write_sep("=", "chaos: nothing lost, nothing doubled")
        terminalreporter.write_line(report.table(report.ROWS))
        terminalreporter.write_line(f"(also in {path})")
