"""Debian's Prometheus scrapes the real service processes during a short end-to-end run; every
Grafana panel query returns series, every alert and recording rule is a valid query, and every
metric they name exists. No panel or alert watches a metric nobody exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopgate_tools.processes import free_port
from tests.e2e.test_loop import all_exceptions, caught_up, expected_pairs, publish_all
from tests.fixtures.receivers import Receivers
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
# Grafana's variables as a query would see them: every rule, a rate window of a minute.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m", "$rule": ".*"}
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{panel['title']}: an unknown template variable in {expr}"
                queries.append((f"{path.name} / {panel['title']}", expr))
    return queries


def rules() -> list[dict[str, Any]]:
    return [
        rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def metrics_named(expr: str) -> set[str]:
    """The raw metrics an expression reads: loopgate_* and up (recording rules, with colons, aside)."""
    return {token for token in NAME.findall(expr) if token.startswith("loopgate_") or token == "up"}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def has_series(self, metric: str) -> bool:
        return bool(self.query(f'count({{__name__="{metric}"}})'))


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[Stack], Prometheus]]:
    """Debian's prometheus, scraping a stack's three services every second, with the shipped rules."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `apt-get install prometheus` (.ci/run does)")
    started: list[subprocess.Popen[bytes]] = []

    def start(stack: Stack) -> Prometheus:
        s = stack.settings
        targets = {
            "loopgate-api": s.api_port,
            "loopgate-detector": s.detector_metrics_port,
            "loopgate-dispatcher": s.dispatcher_metrics_port,
        }
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        started.append(
            subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        server = Prometheus(f"http://127.0.0.1:{port}")

        def ready() -> bool:
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, what="prometheus to start")
        return server

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_every_panel_and_rule_query_is_valid_and_reads_metrics_that_exist(
    stack_factory: Callable[..., Stack],
    prometheus: Callable[[Stack], Prometheus],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # Notifications to local receivers, one failing its first requests: sent, failed, pending and
    # backlog age all have series.
    hook, flaky = Receivers().start(), Receivers(fail_first={"/api/v2/alerts": 2}).start()
    request.addfinalizer(hook.stop)
    request.addfinalizer(flaky.stop)
    notifications = tmp_path / "notifications.toml"
    notifications.write_text(
        f'[receivers.hook]\nkind = "webhook"\nurl = "{hook.base}/hook"\n'
        f'[receivers.am]\nkind = "alertmanager"\nurl = "{flaky.base}"\n'
        '[queues.default]\nreceivers = ["hook", "am"]\nmin_severity = "critical"\n'
    )
    stack = stack_factory(
        notifications_file=notifications, notify_interval_seconds=0.2, notify_retry_initial_seconds=0.2
    )
    server = prometheus(stack)
    for name in ("api", "detector", "dispatcher"):
        stack.start(name)
    publish_all(stack)
    expected = sum(expected_pairs().values())
    wait_until(lambda: len(all_exceptions(stack)) >= expected, timeout=120, what="the exceptions", interval=0.5)
    wait_until(lambda: caught_up(stack), timeout=60, what="detector and dispatcher to commit", interval=0.5)
    over_cap = next(e for e in all_exceptions(stack) if e["rule_id"] == "bid_over_cap")
    with stack.client() as http:  # a resolution, for the verdict and time-to-resolve panels
        answer = http.post(f"/v1/exceptions/{over_cap['id']}/resolve", json={"decision": "confirmed", "reason": "e2e"})
        assert answer.status_code == 200, answer.text

    queries = panel_queries()
    named = {metric for _, expr in queries for metric in metrics_named(expr)}
    named |= {metric for rule in rules() for metric in metrics_named(rule["expr"])}

    def missing() -> set[str]:
        return {metric for metric in named if not server.has_series(metric)}

    try:
        wait_until(lambda: not missing(), timeout=30, what="every named metric in Prometheus", interval=1)
    except TimeoutError:
        pytest.fail(f"metrics named by a panel or rule that Prometheus has no series of: {sorted(missing())}")
    # Rates need two samples in their window: a few more scrapes.
    wait_until(lambda: all(server.query(expr) for _, expr in queries), timeout=20, what="panels", interval=1)
    empty = [f"{where}: {expr}" for where, expr in queries if not server.query(expr)]
    assert empty == [], "panels with no series:\n" + "\n".join(empty)
    for rule in rules():
        server.query(rule["expr"])  # a valid query (alerts are empty while all is well)
    up = server.query('up{job=~"loopgate-.*"}')
    assert sorted(float(sample["value"][1]) for sample in up) == [1.0, 1.0, 1.0]
    assert hook.snapshot() and flaky.snapshot(), "the notifications were not delivered"
