"""A throwaway PostgreSQL cluster from the Debian binaries (`apt-get install postgresql`): initdb +
pg_ctl on a free port in a temporary directory, run as the `postgres` user when we are root
(PostgreSQL refuses to run as root). Used by the test session and by the benchmark.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from loopgate_tools.processes import free_port

PG_USER = "loopgate"
# Fast and disposable: nothing a throwaway cluster holds has to survive a crash.
THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(RuntimeError):
    """The binaries or the system user are missing, or the cluster would not start; says how to fix it."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    async def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        conn = await asyncpg.connect(host=self.host, port=self.port, user=self.user, database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name


def find_pg_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    raise PostgresUnavailable(
        "PostgreSQL binaries not found (initdb, pg_ctl): install them with "
        "`apt-get update && apt-get install -y postgresql` (Debian), then run again"
    )


def _as_owner(args: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(_as_owner(args), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailable(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@dataclass
class PostgresCluster:
    """One cluster: `start()` returns the server to connect to, `stop()` removes every trace of it.
    `settings` are passed to the server as `-c name=value` (default: fast and disposable)."""

    settings: dict[str, str] = field(default_factory=lambda: dict(THROWAWAY_SETTINGS))
    max_connections: int = 200
    base: Path | None = field(default=None, init=False)
    server: PostgresServer | None = field(default=None, init=False)

    def start(self) -> PostgresServer:
        bin_dir = find_pg_bin()
        base = self.base = Path(tempfile.mkdtemp(prefix="loopgate-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root needs the `postgres` system user (apt-get install postgresql)"
                ) from None
            os.chown(base, owner.pw_uid, owner.pw_gid)
        data, log = base / "data", base / "server.log"
        port = free_port()
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "--no-locale", "-E", "UTF8"],
            "initdb",
        )
        settings = {"listen_addresses": "127.0.0.1", "max_connections": str(self.max_connections), **self.settings}
        options = f"-p {port} -k {base} " + " ".join(f"-c {k}={v}" for k, v in settings.items())
        try:
            _run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
                "pg_ctl start",
            )
        except PostgresUnavailable:
            shutil.rmtree(base, ignore_errors=True)
            raise
        self.server = PostgresServer(host="127.0.0.1", port=port, user=PG_USER)
        return self.server

    def stop(self) -> None:
        if self.base is None:
            return
        subprocess.run(
            _as_owner([str(find_pg_bin() / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = self.server = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
