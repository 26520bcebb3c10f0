"""The compose stack's secret files: scripts/compose-secrets.sh writes them (once, private, each
secret in one file), and deploy/postgres/initdb.d/10-loopgate-roles.sh refuses, before it touches
the database, a database URL it cannot make a role from (psql is never reached: the PATH given
here has none). That the roles it makes work, and the application role may not CREATE TABLE, is
tests/e2e/test_compose_stack.py against the real PostgreSQL container."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS_SCRIPT = ROOT / "scripts" / "compose-secrets.sh"
ROLES_SCRIPT = ROOT / "deploy" / "postgres" / "initdb.d" / "10-loopgate-roles.sh"
FILES = {"postgres-password", "database-owner-url", "database-url", "dispatcher-api-token", "grafana-admin-password"}
GOOD_OWNER = "postgresql+asyncpg://loopgate_owner:0123456789abcdef0123456789abcdef@postgres:5432/loopgate"
GOOD_APP = "postgresql+asyncpg://loopgate_app:fedcba9876543210fedcba9876543210@postgres:5432/loopgate"


def write_secrets(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SECRETS_SCRIPT), str(directory)], capture_output=True, text=True, timeout=30, check=True
    )


def test_compose_secrets_writes_each_secret_once_in_a_private_directory(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    write_secrets(directory)
    assert {p.name for p in directory.iterdir()} == FILES
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700  # other users on the host are kept out
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name  # read by each container's own user
    written = {p.name: p.read_text() for p in directory.iterdir()}
    assert written["dispatcher-api-token"] == ""  # the dispatcher waits for a token written here
    owner, app = urlsplit(written["database-owner-url"]), urlsplit(written["database-url"])
    assert (owner.scheme, owner.username, owner.hostname, owner.port, owner.path) == (
        "postgresql+asyncpg",
        "loopgate_owner",
        "postgres",
        5432,
        "/loopgate",
    )
    assert (app.username, app.hostname, app.path) == ("loopgate_app", "postgres", "/loopgate")
    passwords = [written["postgres-password"], owner.password, app.password, written["grafana-admin-password"]]
    assert all(p is not None and len(p) == 48 and set(p) <= set("0123456789abcdef") for p in passwords)
    assert len(set(passwords)) == 4  # no password shared between two roles
    assert "\n" not in "".join(written.values())


def test_compose_secrets_keeps_what_exists(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    write_secrets(directory)
    (directory / "dispatcher-api-token").write_text("lg_token")
    (directory / "database-url").unlink()
    before = {p.name: p.read_text() for p in directory.iterdir()}
    again = write_secrets(directory)
    after = {p.name: p.read_text() for p in directory.iterdir()}
    assert {k: after[k] for k in before} == before  # a token, or your own URL, is never overwritten
    assert urlsplit(after["database-url"]).username == "loopgate_app"  # only the missing one written
    assert f"compose-secrets: wrote {directory}/database-url" in again.stderr
    assert f"compose-secrets: {directory}/dispatcher-api-token exists, kept" in again.stderr


def run_roles(tmp_path: Path, owner: str | None, app: str | None) -> subprocess.CompletedProcess[str]:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    for name, value in (("database-owner-url", owner), ("database-url", app)):
        if value is not None:
            (secrets / name).write_text(value + "\n")
    (tmp_path / "bin").mkdir()
    env = {
        # the script needs bash alone until psql, which this PATH lacks: a refusal must come
        # before the database is touched
        "PATH": str(tmp_path / "bin"),
        "LOOPGATE_ROLES_SECRETS": str(secrets),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "loopgate",
    }
    return subprocess.run(["/bin/bash", str(ROLES_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("owner", "app", "refusal"),
    [
        (None, GOOD_APP, "cannot read {secrets}/database-owner-url (the compose secret for loopgate_owner)"),
        (GOOD_OWNER, None, "cannot read {secrets}/database-url (the compose secret for loopgate_app)"),
        ("", GOOD_APP, "{secrets}/database-owner-url is not postgresql+asyncpg://loopgate_owner:PASSWORD@"),
        # a quote would end the SQL string the password goes into: refused, never escaped
        (
            GOOD_OWNER,
            "postgresql+asyncpg://loopgate_app:x';DROP ROLE postgres;--@postgres:5432/loopgate",
            "{secrets}/database-url is not postgresql+asyncpg://loopgate_app:PASSWORD@",
        ),
        (
            GOOD_OWNER,
            "postgresql+asyncpg://loopgate_app:pa@ss@postgres:5432/loopgate",
            "{secrets}/database-url is not",
        ),
        (
            GOOD_OWNER,
            "postgresql+asyncpg://loopgate_app:pa%27ss@postgres:5432/loopgate",  # percent-encoded: not URL-safe as is
            "{secrets}/database-url is not",
        ),
        (
            GOOD_OWNER,
            "postgresql+asyncpg://loopgate_app@postgres:5432/loopgate",  # no password
            "{secrets}/database-url is not",
        ),
        (
            GOOD_APP,  # the application role's URL where the owner's belongs
            GOOD_APP,
            "{secrets}/database-owner-url names role loopgate_app and database loopgate; "
            "docker-compose.yml expects loopgate_owner and loopgate",
        ),
        (
            GOOD_OWNER,
            GOOD_APP.removesuffix("/loopgate") + "/postgres",
            "{secrets}/database-url names role loopgate_app and database postgres; "
            "docker-compose.yml expects loopgate_app and loopgate",
        ),
        (GOOD_OWNER, GOOD_APP + "\nsecond line", "{secrets}/database-url is not"),
    ],
)
def test_the_roles_script_refuses_a_url_it_cannot_make_a_role_from(
    tmp_path: Path, owner: str | None, app: str | None, refusal: str
) -> None:
    done = run_roles(tmp_path, owner, app)
    assert done.returncode == 1, done
    assert done.stderr.startswith("loopgate roles: " + refusal.format(secrets=tmp_path / "run-secrets")), done.stderr
    assert "psql" not in done.stderr  # stopped before any SQL


def test_the_roles_script_reaches_the_database_with_good_urls(tmp_path: Path) -> None:
    # The counterpart of the refusals: good URLs pass the checks and the script goes on to psql
    # (absent here, so it stops there; the e2e test runs it in the PostgreSQL container).
    done = run_roles(tmp_path, GOOD_OWNER, GOOD_APP)
    assert done.returncode == 127, done
    assert "psql: command not found" in done.stderr
    assert "0123456789abcdef" not in done.stderr  # no password in its output
    assert os.access(ROLES_SCRIPT, os.X_OK)
