"""Issue 16, "Done when": a critical exception produced by the simulator reaches a local webhook
receiver and Alertmanager (an Alertmanager-compatible endpoint and Debian's real Alertmanager)
exactly once per receiver, through API restarts and a receiver that is down for a while; once
resolved, Alertmanager gets the resolved alert. Real api/detector/dispatcher processes, real broker.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopgate_schemas.notifications import notification_id_for
from loopgate_tools.processes import free_port
from loopgate_tools.simulator.generator import SimEvent, generate
from loopgate_tools.simulator.publisher import publish
from tests.e2e.test_loop import all_exceptions, caught_up
from tests.fixtures.receivers import Receivers
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

CRITICAL_RULES = {"overspend", "brand_safety"}


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url

    def alerts(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        answer.raise_for_status()
        return [a for a in answer.json() if a["labels"].get("exception_id")]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    """Debian's Alertmanager with a temporary config (one receiver that sends nowhere) and storage."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("alertmanager is not installed: `apt-get install prometheus-alertmanager` (.ci/run does)")
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "nowhere"}, "receivers": [{"name": "nowhere"}]}))
    port = free_port()
    with (tmp_path / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Alertmanager(f"http://127.0.0.1:{port}")

    def ready() -> bool:
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=30, what="alertmanager to start")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def simulated() -> tuple[list[SimEvent], list[SimEvent]]:
    """A simulator stream cut in two, each half with critical exceptions in it."""
    events = list(generate(120, anomaly_share=0.3, seed=16))
    critical = [i for i, e in enumerate(events) if CRITICAL_RULES & set(e.expected_rules)]
    assert len(critical) >= 2, "the simulated stream has too few critical exceptions"
    cut = critical[len(critical) // 2]
    return events[:cut], events[cut:]


def critical_exceptions(stack: Stack) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in all_exceptions(stack) if e["severity"] == "critical"}


def told(receiver: Receivers) -> Counter[tuple[str, str]]:
    """(exception, event) of every notification the receiver accepted, counting repeats."""
    seen: Counter[tuple[str, str]] = Counter()
    for received in receiver.snapshot():
        if isinstance(received.body, list):  # Alertmanager: a list of alerts
            for alert in received.body:
                seen[(alert["labels"]["exception_id"], alert["annotations"]["event"])] += 1
        else:  # a CloudEvent
            seen[(received.body["subject"], received.body["type"].rsplit(".", 1)[-1])] += 1
    return seen


def test_a_critical_simulated_exception_reaches_every_receiver_exactly_once_through_restarts(
    stack_factory: Callable[..., Stack], alertmanager: Alertmanager, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    hook, am = Receivers().start(), Receivers().start()
    request.addfinalizer(hook.stop)
    request.addfinalizer(am.stop)
    notifications = tmp_path / "notifications.toml"
    notifications.write_text(
        f'[receivers.oncall]\nkind = "webhook"\nurl = "{hook.base}/oncall"\n'
        f'[receivers.am-compatible]\nkind = "alertmanager"\nurl = "{am.base}"\n'
        f'[receivers.alertmanager]\nkind = "alertmanager"\nurl = "{alertmanager.url}"\n'
        '[queues.default]\nreceivers = ["oncall", "am-compatible", "alertmanager"]\nmin_severity = "critical"\n'
    )
    stack = stack_factory(
        notifications_file=notifications,
        notify_interval_seconds=0.2,
        notify_retry_initial_seconds=0.2,
        notify_retry_max_seconds=1.0,
    )
    first, second = simulated()
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)

    def opened_everywhere(ids: set[str]) -> bool:
        return all({(i, "opened") for i in ids} <= set(told(r)) for r in (hook, am)) and ids <= {
            a["labels"]["exception_id"] for a in alertmanager.alerts()
        }

    try:
        asyncio.run(publish(stack.settings, first))
        wait_until(lambda: critical_exceptions(stack), timeout=120, what="a critical exception", interval=0.5)
        wait_until(
            lambda: opened_everywhere(set(critical_exceptions(stack))), timeout=60, what="the first notifications"
        )
        # The webhook receiver goes down; the API restarts twice while exceptions keep coming.
        hook.stop()
        stack.processes["api"].stop()
        stack.start("api")
        asyncio.run(publish(stack.settings, second))
        wait_until(lambda: caught_up(stack), timeout=120, what="the second half to be detected", interval=0.5)
        stack.processes["api"].stop()
        stack.start("api")
        hook.start()
        critical = set(critical_exceptions(stack))
        wait_until(lambda: opened_everywhere(critical), timeout=90, what="every opened notification", interval=0.5)

        with stack.client() as http:
            for exception_id in critical:
                answer = http.post(
                    f"/v1/exceptions/{exception_id}/resolve", json={"decision": "confirmed", "reason": "e2e on call"}
                )
                assert answer.status_code == 200, answer.text
        stack.processes["api"].stop()
        stack.start("api")

        def resolved_everywhere() -> bool:
            return {(i, "resolved") for i in critical} <= set(told(am)) and not (
                critical & {a["labels"]["exception_id"] for a in alertmanager.alerts()}
            )

        wait_until(resolved_everywhere, timeout=60, what="the resolved alerts", interval=0.5)
    except BaseException:
        print(stack.logs())
        raise

    # Exactly once per (exception, receiver, event); only critical exceptions; nothing resolved
    # sent to the webhook (its CloudEvents are opened, escalated and SLA breaches).
    assert critical == set(critical_exceptions(stack))
    for receiver in (hook, am):
        seen = told(receiver)
        assert {i for i, _ in seen} == critical
        assert [key for key, count in seen.items() if count != 1] == []
    assert ("resolved" in {event for _, event in told(hook)}) is False
    assert {(i, "opened") for i in critical} | {(i, "resolved") for i in critical} <= set(told(am))
    for received in hook.snapshot():
        event = received.body
        assert received.headers["x-loopgate-notification-id"] == event["id"]
        if event["type"] == "loopgate.exception.opened":
            assert event["id"] == notification_id_for(event["subject"], "opened", "oncall")
    for received in am.snapshot():
        (alert,) = received.body
        assert received.path == "/api/v2/alerts"
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["rule"] in CRITICAL_RULES
        assert alert["labels"]["queue"] and alert["generatorURL"].endswith(
            f"/console/exceptions/{alert['labels']['exception_id']}"
        )
