"""Runs check.mjs, the independent SDKs' verdict on what Loopgate publishes (the official CloudEvents
SDK for JavaScript and the official AsyncAPI parser, pinned by package-lock.json).

The packages are installed once per machine with `npm ci` into ~/.cache/loopgate/contract-js/<hash
of the lock> (LOOPGATE_CACHE_DIR moves ~/.cache/loopgate), under a file lock so parallel runs share
one install; a changed lock installs afresh beside the old one. Node.js and npm missing is a
failure, never a skip: the contract is checked on every machine that runs the suite.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PINNED = ("package.json", "package-lock.json")
MIN_NODE_MAJOR = 20  # cloudevents 10 wants Node.js 20 to 24
INSTALL_TIMEOUT_SECONDS = 600
CHECK_TIMEOUT_SECONDS = 120


class ContractToolsMissing(RuntimeError):
    """Node.js or npm is not on this machine, or `npm ci` failed."""


def cache_root() -> Path:
    base = os.environ.get("LOOPGATE_CACHE_DIR") or str(Path.home() / ".cache" / "loopgate")
    return Path(base) / "contract-js"


def lock_digest() -> str:
    digest = hashlib.sha256()
    for name in PINNED:
        digest.update((HERE / name).read_bytes())
    return digest.hexdigest()[:16]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ContractToolsMissing(
            f"{name} is not on PATH: the contract tests need Node.js {MIN_NODE_MAJOR}+ and npm "
            "(Debian: apt-get install nodejs npm)"
        )
    return found


def _node() -> str:
    node = _tool("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE_MAJOR:
        raise ContractToolsMissing(f"node {version or '?'} is too old: the contract tests need {MIN_NODE_MAJOR}+")
    return node


def install(root: Path | None = None) -> Path:
    """The directory holding node_modules for the pinned lock, installed if it is not yet."""
    root = root or cache_root()
    target = root / lock_digest()
    stamp = target / ".installed"
    if stamp.exists():
        return target
    npm = _tool("npm")
    _node()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing the same lock
        if stamp.exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=root))
        try:
            for name in PINNED:
                shutil.copy2(HERE / name, staging / name)
            # --ignore-scripts: nothing the packages ship runs at install (one would phone home)
            done = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
            )
            if done.returncode != 0:
                raise ContractToolsMissing(f"npm ci failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stamp.touch()
    return target


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    report: dict[str, Any]
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def problems(self) -> list[str]:
        """Every failure, one line each: the AsyncAPI errors, then each message's problems."""
        errors = (self.report.get("asyncapi") or {}).get("errors", [])
        found = [f"asyncapi: {e['message']} at {e['path']}" for e in errors]
        for part in ("kafka", "http"):
            for checked in self.report.get(part, []):
                found += [f"{part} {checked['name']}: {p}" for p in checked.get("problems", [])]
        return found


@dataclass(frozen=True)
class ContractTools:
    directory: Path

    def check(self, checks: dict[str, Any]) -> Verdict:
        """check.mjs's verdict on `checks` (see its header for the shape)."""
        node = _node()
        script = self.directory / "check.mjs"
        # Copied each run (atomically: parallel runs share the directory), so an edit needs no reinstall;
        # it must sit beside node_modules for Node to resolve its imports.
        with tempfile.NamedTemporaryFile("wb", dir=self.directory, suffix=".mjs", delete=False) as copy:
            copy.write((HERE / "check.mjs").read_bytes())
        os.replace(copy.name, script)
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.directory, delete=False) as given:
            json.dump(checks, given)
        try:
            done = subprocess.run(
                [node, str(script), given.name], capture_output=True, text=True, timeout=CHECK_TIMEOUT_SECONDS
            )
        finally:
            os.unlink(given.name)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"check.mjs exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return Verdict(done.returncode, json.loads(done.stdout), done.stderr)
