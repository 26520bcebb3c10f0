"""Running Loopgate services as child processes (tests, the evaluator and the benchmark).

A child is configured only through LOOPGATE_ environment variables, exactly as in production.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loopgate.common.settings import Settings
from loopgate_tools.waiting import eventually

LOOPGATE = [sys.executable, "-m", "loopgate.cli.main"]
LOOPGATE_TOOLS = [sys.executable, "-m", "loopgate_tools.cli"]
SERVICE_COMMANDS = {
    "api": [*LOOPGATE, "api", "serve"],
    "detector": [*LOOPGATE, "detector", "--log-level", "warning"],
    "dispatcher": [*LOOPGATE, "dispatcher", "--log-level", "warning"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            # pydantic-settings reads complex fields (dicts, lists) from the environment as JSON
            env[f"LOOPGATE_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is truthy; `NeverHeld` (a TimeoutError) naming `what` after `timeout` s.
    An assertion inside `check` (a process died) fails at once instead of being waited out."""
    eventually(lambda: bool(check()), timeout=timeout, what=what, interval=interval, retrying=())


@dataclass
class ServiceProcess:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @classmethod
    def for_service(cls, name: str, settings: Settings, log_dir: Path) -> ServiceProcess:
        return cls(name, SERVICE_COMMANDS[name], settings_env(settings), log_dir / f"{name}.log")

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def run_cli(settings: Settings, *args: str, timeout: float = 120, command: list[str] = LOOPGATE) -> str:
    """Run one `loopgate ...` command (or `loopgate-tools ...`, with `command=LOOPGATE_TOOLS`) with these
    settings; its stdout, or RuntimeError."""
    out = subprocess.run([*command, *args], env=settings_env(settings), capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        name = "loopgate-tools" if command is LOOPGATE_TOOLS else "loopgate"
        raise RuntimeError(f"{name} {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out.stdout
