"""`loopgate ops` against a real `loopgate api serve` on the real broker: the queue, one exception,
claim, a resolution with a correction that reaches exception-outcomes, escalate, snooze, the
stale-version conflict, --json, and the exit codes when something is wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loopgate.cli.main import app
from loopgate.cli.ops import EXIT_CODES
from tests.e2e.operators import BRAND_SAFETY_CAPTION, brand_safety_record, create, outcomes_of
from tests.fixtures.api import record
from tests.fixtures.services import Stack, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def ops(
    stack: Stack | None, *args: str, token: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    values = {"COLUMNS": "200", **(env or {})}
    if stack is not None:
        values.update({"LOOPGATE_OPS_URL": stack.api_url, "LOOPGATE_OPS_TOKEN": token or stack.operator_token})
    result = CliRunner().invoke(app, ["ops", *args], env=values)
    return result.exit_code, result.output


@pytest.fixture
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    running = stack_factory()
    running.start("api")
    return running


def test_an_operator_works_the_queue_from_the_command_line(stack: Stack) -> None:
    bid = create(stack, record(severity="critical", summary="Bid 9.10 EUR CPM over the cap"))
    content = create(stack, brand_safety_record())

    code, output = ops(stack, "list")
    assert code == 0, output
    assert output.index(bid["id"]) < output.index(content["id"])  # critical first
    code, output = ops(stack, "list", "--rule", "brand_safety", "--json")
    assert code == 0 and [e["id"] for e in json.loads(output)["items"]] == [content["id"]]

    code, output = ops(stack, "show", content["id"])
    assert code == 0 and "brand_safety_score" in output and "version" in output

    code, output = ops(stack, "claim", content["id"])
    assert code == 0 and "claimed (alice), version 2" in output

    code, output = ops(
        stack,
        "resolve",
        content["id"],
        "--decision",
        "corrected",
        "--reason",
        "unverifiable claim removed",
        "--set",
        "caption=Glow all day with Lumen serum. #ad",
        "--set",
        "product_claims=[]",
        "--json",
    )
    assert code == 0, output
    resolved = json.loads(output)
    assert resolved["resolution"]["correction"] == {
        "caption": {"before": BRAND_SAFETY_CAPTION, "after": "Glow all day with Lumen serum. #ad"},
        "product_claims": {"before": ["clinically proven"], "after": []},
    }
    wait_until(lambda: len(outcomes_of(stack, content["id"])) == 1, timeout=30, what="the outcome")
    [outcome] = outcomes_of(stack, content["id"])
    assert outcome["data"]["decision"] == "corrected"
    assert outcome["data"]["resolver"] == "alice"
    assert outcome["data"]["correction"]["caption"]["after"] == "Glow all day with Lumen serum. #ad"

    code, output = ops(stack, "escalate", bid["id"], "--reason", "the client's finance team must agree")
    assert code == 0 and "escalated" in output
    other = create(stack, record())
    code, output = ops(stack, "snooze", other["id"], "--for", "2h", "--reason", "waiting on the trafficker")
    assert code == 0 and "snoozed" in output

    noisy = create(stack, record(client_id="contoso"))
    code, output = ops(
        stack, "silence", "--like", noisy["id"], "--for", "4h", "--comment", "cap being raised", "--json"
    )
    assert code == 0, output
    silence = json.loads(output)
    assert (silence["rule_id"], silence["client_id"], silence["silenced"]) == ("bid_over_cap", "contoso", 1)
    assert ops(stack, "silence", "--like", noisy["id"])[0] == EXIT_CODES["usage"]  # no --comment


def test_exit_codes_say_what_went_wrong(stack: Stack, tmp_path: Path) -> None:
    exc = create(stack, record())
    assert ops(stack, "show", "no-such-exception")[0] == EXIT_CODES["not_found"]
    assert ops(stack, "claim", exc["id"])[0] == 0
    code, output = ops(stack, "claim", exc["id"], "--if-version", "1")
    assert code == EXIT_CODES["conflict"] and "changed by someone else" in output
    assert ops(stack, "resolve", exc["id"])[0] == EXIT_CODES["usage"]  # --decision missing
    code, output = ops(stack, "resolve", exc["id"], "--decision", "corrected")
    assert code == EXIT_CODES["refused"] and "correction" in output
    assert ops(stack, "list", token="lg_wrong")[0] == EXIT_CODES["unauthorized"]
    assert ops(stack, "list", token=stack.service_token)[0] == EXIT_CODES["unauthorized"]
    code, output = ops(stack, "resolve", exc["id"], "--decision", "confirmed")
    assert code == 0
    code, output = ops(stack, "resolve", exc["id"], "--decision", "confirmed")
    assert code == EXIT_CODES["conflict"] and "not allowed now" in output

    config = tmp_path / "ops.toml"
    config.write_text(f'url = "{stack.api_url}"\ntoken = "{stack.operator_token}"\n')
    code, output = ops(None, "list", "--json", env={"LOOPGATE_OPS_CONFIG": str(config)})
    assert code == 0 and json.loads(output)["items"] == []


def test_without_a_token_or_a_reachable_api_the_exit_code_says_so(tmp_path: Path) -> None:
    nowhere = {"LOOPGATE_OPS_CONFIG": str(tmp_path / "none.toml")}
    code, output = ops(None, "list", env=nowhere)
    assert code == EXIT_CODES["usage"] and "no token" in output
    code, output = ops(
        None, "list", env={**nowhere, "LOOPGATE_OPS_URL": "http://127.0.0.1:9", "LOOPGATE_OPS_TOKEN": "x"}
    )
    assert code == EXIT_CODES["unavailable"] and "cannot reach" in output


def test_silences_are_listed_and_expired_from_the_command_line(stack: Stack) -> None:
    noisy = create(stack, record(rule_id="bid_over_cap", client_id="contoso"))
    code, output = ops(stack, "silence", "--like", noisy["id"], "--comment", "cap being raised", "--json")
    assert code == 0, output
    silence_id = json.loads(output)["id"]

    code, listed = ops(stack, "silences", "list")
    assert code == 0, listed
    assert silence_id in listed and "rule_id=bid_over_cap, client_id=contoso" in listed and "alice" in listed

    code, output = ops(stack, "silences", "expire", silence_id)
    assert (code, output.strip()) == (0, f"silence {silence_id}: expired by alice")
    code, output = ops(stack, "silences", "list", "--json")
    assert code == 0 and [s["id"] for s in json.loads(output)["items"]] == []
    code, output = ops(stack, "silences", "list", "--expired", "--json")
    assert code == 0 and [s["id"] for s in json.loads(output)["items"]] == [silence_id]
    assert ops(stack, "silences", "expire", "no-such-silence")[0] == EXIT_CODES["not_found"]


def test_an_admin_reopens_from_the_command_line_and_an_operator_may_not(stack: Stack) -> None:
    exc = create(stack, record())
    assert ops(stack, "resolve", exc["id"], "--decision", "confirmed", "--reason", "checked")[0] == 0

    refused = ops(stack, "reopen", exc["id"], "--reason", "wrong call")
    code, output = ops(stack, "reopen", exc["id"], "--reason", "wrong call", token=stack.admin_token)

    assert refused[0] == EXIT_CODES["unauthorized"]
    assert code == 0, output
    assert output.strip().startswith(f"{exc['id']}: open")


def test_whoami_says_who_the_token_is_and_what_it_sees(stack: Stack) -> None:
    code, output = ops(stack, "whoami")

    assert (code, output.strip()) == (0, "alice: operator, sees every client")


def test_unclaim_from_the_command_line_by_the_assignee_and_by_an_admin(stack: Stack) -> None:
    exc = create(stack, record())
    assert ops(stack, "claim", exc["id"])[0] == 0
    code, output = ops(stack, "unclaim", exc["id"], "--if-version", "2")
    assert (code, output.strip()) == (0, f"{exc['id']}: open, version 3")

    assert ops(stack, "claim", exc["id"], token=stack.admin_token)[0] == 0
    refused = ops(stack, "unclaim", exc["id"])
    code, output = ops(stack, "unclaim", exc["id"], token=stack.admin_token)
    assert refused[0] == EXIT_CODES["unauthorized"] and "only its assignee or an admin" in refused[1]
    assert (code, output.strip()) == (0, f"{exc['id']}: open, version 5")
    assert ops(stack, "unclaim", exc["id"])[0] == EXIT_CODES["conflict"]


def test_oncall_says_who_is_on_call_in_every_schedule(stack_factory: Callable[..., Stack], tmp_path: Path) -> None:
    schedules = tmp_path / "schedules.toml"
    schedules.write_text(
        """
[people.alice]
name = "Alice Martin"
channels = [{ kind = "chat", address = "<@UALICE>" }]
[people.bob]
[schedules.ops]
time_zone = "Europe/London"
[[schedules.ops.layers]]
name = "primary"
rotation = "weekly"
start = 2019-12-30
people = ["alice"]
[[schedules.ops.overrides]]
person = "bob"
start = 2020-01-01T00:00:00Z
end = 2020-01-02T00:00:00Z
[schedules.later]
time_zone = "Asia/Tokyo"
[[schedules.later.layers]]
rotation = "daily"
start = 2099-01-01
people = ["bob"]
"""
    )
    stack = stack_factory(schedules_file=schedules)
    stack.start("api")

    code, output = ops(stack, "oncall")
    assert code == 0, output
    lines = [line.split() for line in output.splitlines()]
    assert lines[1][:2] == ["later", "nobody"]
    assert lines[2][:4] == ["ops", "alice", "(Alice", "Martin)"] and "chat: <@UALICE>" in output

    code, output = ops(stack, "oncall", "--at", "2020-01-01T12:00:00Z", "--json")
    assert code == 0, output
    assert [(i["schedule"], i["person"], i["source"]) for i in json.loads(output)["items"]] == [
        ("later", None, "nobody"),
        ("ops", "bob", "override"),
    ]

    code, output = ops(stack, "oncall", "--at", "yesterday")
    assert code != 0 and "at" in output
    code, output = ops(stack, "oncall", token=stack.service_token)
    assert code != 0 and "may not see who is on call" in output
