"""`loopgate api migrate` and `loopgate api tokens ...` (the typer app of cli/api.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from loopgate.cli.api import app, token_created_message
from loopgate.common.settings import get_settings
from loopgate.resolution_api.access.permissions import Role

runner = CliRunner()


@pytest.fixture(autouse=True)
def _database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOOPGATE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_migrate_brings_the_database_to_head(database_url: str) -> None:
    result = runner.invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"database at head: {database_url}\n"


def test_tokens_create_prints_the_secret_once_and_list_never_shows_it() -> None:
    created = runner.invoke(app, ["tokens", "create", "--role", "service", "--name", "dispatcher"])
    listed = runner.invoke(app, ["tokens", "list"])

    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("lg_")
    assert "dispatcher" in listed.stdout and "service" in listed.stdout
    assert secret not in listed.stdout


def test_tokens_create_names_the_id_as_an_id_and_points_at_the_secret() -> None:
    created = runner.invoke(app, ["tokens", "create", "--role", "operator", "--name", "demo-operator"])
    token_id = runner.invoke(app, ["tokens", "list"]).stdout.splitlines()[1].split("\t")[0]

    secret = created.stdout.strip()
    assert created.stderr == (
        f"created operator token for 'demo-operator' (token id {token_id}, for `loopgate api tokens revoke`; "
        "it is not the token). The token is on stdout, starting lg_: copy it now, it is shown only once.\n"
    )
    assert secret not in created.stderr and token_id not in created.stdout


def test_on_a_terminal_the_message_points_at_the_line_below() -> None:
    message = token_created_message(role=Role.ADMIN, name="ops", token_id="abc123", terminal=True)

    assert message == (
        "created admin token for 'ops' (token id abc123, for `loopgate api tokens revoke`; it is not the token). "
        "The token is on the line below, starting lg_: copy it now, it is shown only once."
    )


def test_tokens_revoke_marks_the_token_revoked() -> None:
    runner.invoke(app, ["tokens", "create", "--role", "operator", "--name", "dana"])
    token_id = runner.invoke(app, ["tokens", "list"]).stdout.splitlines()[1].split("\t")[0]

    revoked = runner.invoke(app, ["tokens", "revoke", token_id])
    listed = runner.invoke(app, ["tokens", "list"]).stdout.splitlines()[1].split("\t")

    assert (revoked.exit_code, revoked.stdout.strip()) == (0, f"revoked {token_id}")
    assert listed[4] != "-"


def test_revoking_an_unknown_token_exits_1() -> None:
    result = runner.invoke(app, ["tokens", "revoke", "nope"])

    assert result.exit_code == 1
    assert "no token with id 'nope'" in result.stderr


def test_an_unknown_role_is_refused() -> None:
    result = runner.invoke(app, ["tokens", "create", "--role", "root", "--name", "x"])

    assert result.exit_code == 2
