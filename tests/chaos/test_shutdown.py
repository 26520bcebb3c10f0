"""Graceful shutdown: SIGTERM stops each service promptly with exit code 0, and restarting every
service in turn while events flow loses nothing and doubles nothing."""

from __future__ import annotations

import time

import httpx
import pytest

from loopgate_tools.processes import wait_until
from tests.chaos.harness import PUBLISH_SECONDS, ChaosRun, graceful_stop, scrape, total

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]

STOP_WITHIN_SECONDS = 15.0


def counted(port: int, metric: str) -> float:
    """A counter of a service's /metrics (0 while the endpoint is not up yet)."""
    try:
        return total(scrape(port), metric)
    except httpx.HTTPError:
        return 0.0


def test_rolling_restart_with_sigterm_exits_promptly_and_loses_nothing(chaos: ChaosRun) -> None:
    s = chaos.settings
    at_work = {  # a rolling restart moves on once the service it restarted is doing its job again
        "detector": lambda: counted(s.detector_metrics_port, "loopgate_events_consumed_total") > 0,
        "dispatcher": lambda: counted(s.dispatcher_metrics_port, "loopgate_exceptions_delivered_total") > 0,
        "api": chaos.stack.api_ready,
    }
    publisher = chaos.publish(seconds=2 * PUBLISH_SECONDS)
    exits: dict[str, tuple[int | None, float]] = {}
    for share, name in ((0.2, "detector"), (0.45, "dispatcher"), (0.7, "api")):
        publisher.wait_share(share)
        wait_until(at_work[name], timeout=120, what=f"the {name} to be at work", interval=0.1)
        exits[name] = graceful_stop(chaos.stack.processes[name])
        chaos.stack.start(name)
    publisher.join()
    row = chaos.measure("rolling restart, SIGTERM each service", since=time.monotonic())
    assert {name: code for name, (code, _) in exits.items()} == {"detector": 0, "dispatcher": 0, "api": 0}
    assert all(seconds < STOP_WITHIN_SECONDS for _, seconds in exits.values()), exits
    assert row.clean, row
