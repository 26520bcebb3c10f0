"""The runtime install (what the Dockerfile does: the runtime lock with its hashes, then `pip
install --no-deps .`, no extras, into a clean virtual environment) starts every service.

It is built once per session from a copy of exactly what the Dockerfile's build stage copies
(requirements.lock, pyproject.toml, schemas/, services/), running its pip commands, so a module
that imports a dev-only dependency at load time, a dependency missing from the lock, or a file the
package forgets to ship, fails here rather than in the image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from loopgate.common.settings import Settings
from loopgate_tools.processes import ServiceProcess, free_port, settings_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEV_ONLY = (
    *(
        "pytest",
        "hypothesis",
        "psutil",
        "schemathesis",
        "mypy",
        "ruff",
        "pyinstrument",
        "matplotlib",
        "pip-audit",
        "uv",
    ),
)


def _build_stage() -> list[tuple[str, str]]:
    """The Dockerfile's build stage as (instruction, argument) pairs, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = [line.split(maxsplit=1) for line in text.splitlines() if line[:1].isupper()]
    froms = [n for n, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return [(keyword, argument) for keyword, argument in instructions[froms[0] + 1 : froms[1]]]


def _copied() -> list[str]:
    """What the build stage copies from the build context into its source folder."""
    return [argument.split()[0] for keyword, argument in _build_stage() if keyword == "COPY"]


def _pip_commands(venv: Path) -> list[str]:
    """The build stage's pip commands (the RUN's shell command, without its `--mount=...` flags),
    on this venv instead of /opt/venv."""
    runs = [argument for keyword, argument in _build_stage() if keyword == "RUN" and "/opt/venv/bin/pip" in argument]
    return [re.sub(r"^(--\S+\s+)+", "", run).strip().replace("/opt/venv", str(venv)) for run in runs]


def test_the_image_installs_the_runtime_lock_with_hashes_then_the_package_alone() -> None:
    assert _copied()[0] == "requirements.lock"
    first, package = (run.replace("/opt/venv/bin/", "") for run in _pip_commands(Path("/opt/venv")))
    *ca_bundle, install = (statement.strip() for statement in first.split(";"))
    assert install == "pip install --require-hashes -r requirements.lock"
    # The machine's CA bundle (for a TLS-intercepting proxy) comes as a build secret, never a layer.
    assert ca_bundle == ["if [ -s /run/secrets/ca ]", "then export PIP_CERT=/run/secrets/ca", "fi"]
    assert package.startswith("pip install --no-deps --no-build-isolation . ")


def _copy_build_context(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in _copied():
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the Dockerfile's pip commands run in a copy of its build context: the
    image's /opt/venv."""
    work = tmp_path_factory.mktemp("runtime-install")
    context, venv = work / "src", work / "venv"
    context.mkdir()
    _copy_build_context(context)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for command in _pip_commands(venv):
        out = subprocess.run(
            command,
            shell=True,
            cwd=context,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_QUIET": "1"},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert out.returncode == 0, f"{command} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return venv


def _loopgate(venv: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "loopgate"), *args], capture_output=True, text=True, timeout=120, env=env, cwd=venv
    )


def test_the_runtime_install_holds_no_dev_dependency(runtime_venv: Path) -> None:
    listed = subprocess.run(
        [str(runtime_venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert installed.isdisjoint(DEV_ONLY), sorted(installed & set(DEV_ONLY))


def test_the_runtime_install_holds_no_tool(runtime_venv: Path) -> None:
    """The simulator, benchmark, evaluator and test helpers are `loopgate-tools`, never in the image."""
    python = str(runtime_venv / "bin" / "python")
    for module in ("loopgate_tools", "loopgate.simulator", "loopgate.bench", "loopgate.evaluation"):
        found = subprocess.run(
            [python, "-c", f"import importlib.util as u; print(u.find_spec('{module}') is None)"],
            capture_output=True,
            text=True,
        )
        assert found.stdout.strip() == "True", f"{module} is in the runtime install: {found.stderr[-500:]}"
    assert not (runtime_venv / "bin" / "loopgate-tools").exists()


def test_loopgate_help_lists_every_service_command(runtime_venv: Path) -> None:
    out = _loopgate(runtime_venv, "--help")
    assert out.returncode == 0, out.stderr
    for command in ("detector", "dispatcher", "api", "topics", "schemas"):
        assert command in out.stdout
    for tool in ("simulate", "evaluate", "bench", "demo-report"):
        assert tool not in out.stdout
    for args in (
        ("api", "--help"),
        ("api", "serve", "--help"),
        ("detector", "--help"),
        ("dispatcher", "--help"),
        ("topics", "create", "--help"),
        ("api", "tokens", "create", "--help"),
    ):
        sub = _loopgate(runtime_venv, *args)
        assert sub.returncode == 0, f"loopgate {' '.join(args)}: {sub.stderr[-2000:]}"


def _metrics_answer(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def test_every_service_starts_and_stops_cleanly_from_the_runtime_install(
    runtime_venv: Path, kafka_settings: Settings, tmp_path: Path
) -> None:
    """The compose file's commands, in its order: migrate, a token, then the API, the detector and
    the dispatcher each become ready and exit 0 on SIGTERM."""
    api_port = free_port()
    settings = kafka_settings.model_copy(
        update={
            "api_port": api_port,
            "api_url": f"http://127.0.0.1:{api_port}",
            "detector_metrics_port": free_port(),
            "dispatcher_metrics_port": free_port(),
        }
    )
    env = settings_env(settings)
    for args in (("topics", "create"), ("api", "migrate")):
        out = _loopgate(runtime_venv, *args, env=env)
        assert out.returncode == 0, f"loopgate {' '.join(args)}: {out.stdout}\n{out.stderr[-3000:]}"
    token = _loopgate(runtime_venv, "api", "tokens", "create", "--role", "service", "--name", "dispatcher", env=env)
    assert token.returncode == 0, token.stderr
    env["LOOPGATE_API_TOKEN"] = token.stdout.strip().splitlines()[-1]

    binary = str(runtime_venv / "bin" / "loopgate")
    services = {
        "api": ServiceProcess("api", [binary, "api", "serve"], env, tmp_path / "api.log"),
        "detector": ServiceProcess(
            "detector", [binary, "detector", "--log-level", "warning"], env, tmp_path / "detector.log"
        ),
        "dispatcher": ServiceProcess(
            "dispatcher", [binary, "dispatcher", "--log-level", "warning"], env, tmp_path / "dispatcher.log"
        ),
    }
    ready = {
        "api": lambda: _status(f"{settings.api_url}/readyz") == 200,
        "detector": _metrics_answer(settings.detector_metrics_port),
        "dispatcher": _metrics_answer(settings.dispatcher_metrics_port),
    }
    try:
        for name, proc in services.items():
            proc.start()
            wait_until(
                lambda name=name, proc=proc: ready[name]() or not proc.alive(),  # type: ignore[misc]
                timeout=90,
                what=f"{name} to become ready",
            )
            assert proc.alive(), f"{name} exited:\n{proc.log()[-4000:]}"
        codes = {name: proc.stop(timeout=60) for name, proc in reversed(services.items())}
        assert codes == {"dispatcher": 0, "detector": 0, "api": 0}, "\n".join(
            f"== {n}\n{p.log()[-3000:]}" for n, p in services.items()
        )
    finally:
        for proc in services.values():
            proc.kill()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return None
