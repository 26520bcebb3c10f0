"""The alert and recording rules in deploy/prometheus/rules/ are valid and do what their unit tests
(deploy/prometheus/tests/, `promtool test rules`) say; the configs that load them are valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from loopgate.resolution_api.notifications.payloads import ALERT_NAME

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    """A Prometheus tool from Debian's packages; missing is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `apt-get install prometheus prometheus-alertmanager` (.ci/run does)")
    return path


def run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"


def test_rule_files_are_valid() -> None:
    assert RULES, "no rule file in deploy/prometheus/rules"
    run(tool("promtool"), "check", "rules", *map(str, RULES))


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no rule test in deploy/prometheus/tests"
    run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))


def test_every_rule_file_is_unit_tested() -> None:
    tested = {
        (test.parent / line.strip().removeprefix("- ").strip()).resolve()
        for test in RULE_TESTS
        for line in test.read_text().splitlines()
        if line.strip().startswith("- ") and line.strip().endswith(".yml")
    }
    assert {rule.resolve() for rule in RULES} <= tested


def test_prometheus_config_loads_the_rules_and_is_valid() -> None:
    run(tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_alertmanager_config_is_valid() -> None:
    run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=LoopgateException", "severity=critical"], "loopgate-page"),
        (["alertname=LoopgateException", "severity=high"], "loopgate-ticket"),
        (["alertname=LoopgateException", "severity=info"], "loopgate-ticket"),
        (["alertname=LoopgateTargetDown", "severity=page"], "loopgate-page"),
        (["alertname=LoopgateSlaBreached", "severity=ticket"], "loopgate-ticket"),
    ],
)
def test_a_critical_exception_pages_and_the_rest_become_tickets(labels: list[str], receiver: str) -> None:
    assert ALERT_NAME == "LoopgateException"  # the alertname Loopgate's notifications carry
    result = subprocess.run(
        [tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout.strip()) == (0, receiver), result.stderr
