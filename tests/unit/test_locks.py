"""The locks agree with the pyproject files (`make lock` writes them; README "Dependencies"):
every dependency is pinned in its lock at a version its specifier allows, every pin carries its
hashes, nothing is installed from a path, a URL or unpinned, and the development lock pins what the
image ships at the same versions (the tests run what the image runs)."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
OURS = {"loopgate", "loopgate-tools"}
DEV_ONLY = {
    "pytest",
    "hypothesis",
    "schemathesis",
    "mypy",
    "ruff",
    "pyinstrument",
    "selenium",
    "pip-audit",
    "uv",
    "psutil",
}
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?\\$")
HASH = re.compile(r"^ {4}--hash=sha256:[0-9a-f]{64}( \\)?$")


@dataclass(frozen=True, slots=True)
class Pin:
    version: str
    marker: str | None
    hashes: int


def read_lock(path: Path) -> dict[str, Pin]:
    """name -> its pin for this interpreter (Python 3.11 on Linux, as the image and CI); fails on any
    line that is not a pin, a hash or a comment, and on a name pinned twice for one environment."""
    pins: dict[str, Pin] = {}
    current: tuple[str, Pin] | None = None

    def keep() -> None:
        if current is None:
            return
        assert current[1].hashes, f"{path.name}: {current[0]}=={current[1].version} has no hash"
        if current[1].marker is None or Marker(current[1].marker).evaluate():
            assert current[0] not in pins, f"{path.name}: {current[0]} pinned twice"
            pins[current[0]] = current[1]

    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := PIN.match(line):
            keep()
            marker = match["marker"].strip() if match["marker"] else None
            current = (canonicalize_name(match["name"]), Pin(version=match["version"], marker=marker, hashes=0))
        elif HASH.match(line) and current is not None:
            name, pin = current
            current = (name, Pin(pin.version, pin.marker, pin.hashes + 1))
        else:
            pytest.fail(f"{path.name}:{number}: neither an exact pin nor its hash: {line!r}")
    keep()
    return pins


def pyproject(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


def runtime_requirements() -> list[Requirement]:
    project = pyproject(ROOT / "pyproject.toml")["project"]
    assert isinstance(project, dict)
    return [Requirement(r) for r in project["dependencies"]]


def dev_requirements() -> list[Requirement]:
    project = pyproject(ROOT / "pyproject.toml")["project"]
    tools = pyproject(ROOT / "tools" / "pyproject.toml")["project"]
    assert isinstance(project, dict) and isinstance(tools, dict)
    wanted = [*project["optional-dependencies"]["dev"], *tools["dependencies"]]
    return [r for r in map(Requirement, wanted) if canonicalize_name(r.name) not in OURS]


def build_requirements() -> list[Requirement]:
    build = pyproject(ROOT / "pyproject.toml")["build-system"]
    assert isinstance(build, dict)
    return [Requirement(r) for r in build["requires"]]


def extras_requirements(requirement: Requirement) -> list[Requirement]:
    """What the requirement's extras add (uvicorn[standard]: uvloop, httptools, ...), for Linux on
    Python 3.11, read from the installed distribution (installed from the same lock)."""
    found = []
    for extra in requirement.extras:
        for line in importlib.metadata.requires(requirement.name) or []:
            required = Requirement(line)
            if required.marker is not None and required.marker.evaluate({"extra": extra}):
                found.append(required)
    return found


def assert_pinned(requirements: list[Requirement], pins: dict[str, Pin], lock: Path) -> None:
    for requirement in requirements:
        for wanted in (requirement, *extras_requirements(requirement)):
            name = canonicalize_name(wanted.name)
            assert name in pins, f"{wanted} is not in {lock.name}: make lock"
            assert wanted.specifier.contains(pins[name].version, prereleases=True), (
                f"{lock.name} pins {name}=={pins[name].version}, which {wanted} does not allow: make lock"
            )


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_pin_is_exact_and_carries_its_hashes(lock: Path) -> None:
    pins = read_lock(lock)
    assert pins
    assert [name for name, pin in pins.items() if pin.hashes == 0] == []
    assert OURS.isdisjoint(pins), "the project itself is installed from its own folder, not from the lock"


def test_the_runtime_lock_pins_every_runtime_dependency_and_the_build_backend() -> None:
    pins = read_lock(RUNTIME_LOCK)
    assert_pinned([*runtime_requirements(), *build_requirements(), Requirement("pip")], pins, RUNTIME_LOCK)


def test_the_runtime_lock_holds_no_development_tool() -> None:
    assert DEV_ONLY.isdisjoint(read_lock(RUNTIME_LOCK))


def test_the_dev_lock_pins_the_dev_extras_the_tools_and_the_build_backend() -> None:
    pins = read_lock(DEV_LOCK)
    assert_pinned([*dev_requirements(), *runtime_requirements(), *build_requirements()], pins, DEV_LOCK)


def test_the_dev_lock_pins_what_the_image_ships_at_the_same_versions() -> None:
    runtime, dev = read_lock(RUNTIME_LOCK), read_lock(DEV_LOCK)
    differ = {name: (pin.version, dev[name].version if name in dev else None) for name, pin in runtime.items()}
    assert {name: versions for name, versions in differ.items() if versions[0] != versions[1]} == {}
