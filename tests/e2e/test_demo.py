"""The README's first command, run the way a newcomer runs it: `make demo` in a fresh copy of the
repository (what `git clone` gives: no .venv, no .run, no broker data), with nothing but the
machine's caches. It installs, starts a broker of its own and every service, drives simulated
traffic through the loop and prints it; Ctrl-C stops it all. Then `make down` and `make demo`
again, this time stopping by itself (DEMO_ONCE=1), on the broker data the first run left.

Ports are free ones, so the demo never meets the test session's broker or another stack."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from loopgate_tools.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
PORT_NAMES = ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "DEMO_API_PORT", "DEMO_DETECTOR_PORT", "DEMO_DISPATCHER_PORT")
LOOP_PRINTED = (
    "Events processed per source",
    "Exceptions raised per rule (detector) vs injected (simulator ground truth)",
    "Open in the API:",
)
OUTCOME = re.compile(r"Outcome read back from exception-outcomes \(partition \d+, offset \d+\):\n(\{.*?\n\})", re.S)


def fresh_clone(dest: Path) -> Path:
    """The files a clone of this tree has: tracked ones (as they are now) and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in {n for n in listed.decode().split("\0") if n}:
        source = ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


@dataclass
class Demo:
    clone: Path
    env: dict[str, str]
    ports: dict[str, int]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['DEMO_API_PORT']}"

    def start(self, *, once: bool) -> subprocess.Popen[str]:
        env = {**self.env, "DEMO_ONCE": "1" if once else "0"}
        return subprocess.Popen(
            ["make", "demo"],
            cwd=self.clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", target], cwd=self.clone, env=self.env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    clone = fresh_clone(tmp_path / "loopgate")
    ports = {name: free_port() for name in PORT_NAMES}
    env = {
        k: v
        for k, v in os.environ.items()
        if k == "LOOPGATE_CACHE" or not k.startswith(("LOOPGATE_", "KAFKA_", "DEMO_", "VIRTUAL_ENV"))
    }
    env.update({name: str(port) for name, port in ports.items()})
    env.update({"DEMO_SECONDS": "10", "DEMO_RATE": "200"})
    made = Demo(clone=clone, env=env, ports=ports)
    yield made
    made.make("down")  # whatever a failed assertion left running


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """What the process printed up to and including the line with `marker` (fails if it exits first)."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    process.kill()
    raise AssertionError(f"no {marker!r} in what the demo printed:\n" + "".join(lines)[-6000:])


def assert_loop_printed(output: str) -> None:
    for title in LOOP_PRINTED:
        assert title in output, output[-4000:]
    resolved = re.search(r"POST /v1/exceptions/(\S+)/resolve -> 200", output)
    assert resolved, output[-4000:]
    outcome = re.search(
        r"Outcome read back from exception-outcomes \(partition \d+, offset \d+\):\n(\{.*?\n\})", output, re.S
    )
    assert outcome, output[-4000:]
    assert f'"subject": "{resolved.group(1)}"' in outcome.group(1)
    assert '"type": "loopgate.exception.resolved"' in outcome.group(1)


def assert_console_answers(api_url: str, token: str) -> None:
    with httpx.Client(base_url=api_url, timeout=10) as http:
        page = http.get("/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf, page.text[:500]
        queue = http.post("/console/sign-in", data={"csrf": csrf.group(1), "token": token}, follow_redirects=True)
        assert queue.status_code == 200, queue.text[:500]
        assert "demo-operator" in queue.text


def assert_all_stopped(demo: Demo) -> None:
    for name, port in demo.ports.items():
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"{name} {port} still answers"
    left = subprocess.run(["pgrep", "-af", str(demo.clone)], capture_output=True, text=True).stdout
    assert left == "", left


def test_make_demo_on_a_fresh_clone_shows_the_loop_and_stops_on_ctrl_c(demo: Demo) -> None:
    process = demo.start(once=False)
    output = read_until(process, "Operator token:", timeout=1200)
    token = output.rsplit("Operator token:", 1)[1].strip()

    assert_loop_printed(output)
    assert token.startswith("lg_")
    assert f"The console:      {demo.api_url}/console" in output
    assert_console_answers(demo.api_url, token)

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, to the whole foreground job
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGINT, rest  # make ends by the interrupt, as a shell's 130
    # The services see the interrupt too (uvicorn and faust handle SIGINT themselves), so which of
    # them the demo's own `down` still finds running is a race; that it ran and all is gone is not.
    assert "kafka: stopped" in rest, rest
    assert_all_stopped(demo)

    # `make down` with nothing running, then the demo again on the broker data the first run left.
    assert demo.make("down").returncode == 0
    again = demo.start(once=True)
    second, _ = again.communicate(timeout=900)

    assert again.returncode == 0, second[-6000:]
    assert_loop_printed(second)
    assert "demo: DEMO_ONCE=1, stopping everything" in second
    assert_all_stopped(demo)
