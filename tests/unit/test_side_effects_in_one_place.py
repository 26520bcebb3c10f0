"""What follows a change (history, outbox, notification events, transition metrics, waking the
relay) is written in handlers.py only: the routes, the console, bulk work, the transitions and the
sweeper publish events and do none of it themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopgate.resolution_api as resolution_api

API = Path(resolution_api.__file__).parent
CALLERS = [
    "api/exceptions.py",
    "console/routes.py",
    "exceptions/creation.py",
    "exceptions/intake.py",
    "exceptions/transitions.py",
    "exceptions/bulk_work.py",
    "sweeps/deadlines.py",
    "sweeps/sweeper.py",
]
SIDE_EFFECTS = [
    ".wake()",
    "add_event(",
    "add_events(",
    "add_outbox",
    "record_event",
    "EXCEPTION_TRANSITIONS",
    "TIME_TO_RESOLVE",
    "SLA_BREACHES",
    "count_resolution",
    "resolution_span",
    "EXCEPTIONS_CREATED",
    "ROUTING_FALLBACKS",
]


@pytest.mark.parametrize("module", CALLERS)
def test_a_caller_of_the_commands_does_no_side_effect_itself(module: str) -> None:
    source = (API / module).read_text()
    assert [effect for effect in SIDE_EFFECTS if effect in source] == []


def test_the_handlers_module_does_them_all() -> None:
    source = (API / "handlers.py").read_text()
    assert [effect for effect in SIDE_EFFECTS if effect not in source and effect != "add_event("] == []
