"""The `escalated` decision and the `escalate` action are told apart in the CLI help."""

from __future__ import annotations

from typer.testing import CliRunner

from loopgate.cli.main import app
from loopgate.common.decisions import DECISION_MEANINGS, decisions_help
from loopgate_schemas.outcomes import Decision


def test_every_decision_has_a_meaning_and_escalated_points_at_the_action() -> None:
    assert set(DECISION_MEANINGS) == set(Decision)
    assert "escalate action" in DECISION_MEANINGS[Decision.ESCALATED]
    assert all(f"{d.value}:" in decisions_help() for d in Decision)


def test_the_cli_help_says_which_one_keeps_the_exception_open() -> None:
    env = {"COLUMNS": "300"}
    escalate = CliRunner().invoke(app, ["ops", "escalate", "--help"], env=env).output
    resolve = CliRunner().invoke(app, ["ops", "resolve", "--help"], env=env).output
    assert "keep it open" in escalate and "Not the `escalated` decision" in escalate
    assert "escalated: handed to someone outside Loopgate" in " ".join(resolve.split())
