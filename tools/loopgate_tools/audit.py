"""`make audit`: pip-audit over each lock (requirements.lock, the image's; requirements-dev.lock,
`make install`'s) against PyPI's vulnerability service. A finding fails the run unless
deploy/audit-ignore.toml lists its advisory (its id or one of its aliases) with a reason.

pip-audit itself answers "No known vulnerabilities found" and exits 0 when PyPI knows none of the
packages (it skips them), so its JSON report is judged here: a package that could not be audited
fails the run too. When the service answered for no package at all (a mirror without PyPI's
per-version JSON), `--allow-unavailable` turns that into a loud warning instead of a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

ROOT = Path(__file__).resolve().parents[2]
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
IGNORE_FILE = ROOT / "deploy" / "audit-ignore.toml"


class IgnoreFileError(ValueError):
    """The ignore file is not a list of advisories, each with an id and a reason."""


@dataclass(frozen=True, slots=True)
class Finding:
    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def names(self) -> set[str]:
        return {self.advisory, *self.aliases}

    def __str__(self) -> str:
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fix = f"; fixed in {', '.join(self.fixed_in)}" if self.fixed_in else "; no fixed version yet"
        return f"{self.package} {self.version}: {self.advisory}{also}{fix}"


@dataclass(slots=True)
class Verdict:
    """What one lock's report says, once the ignore file is applied."""

    audited: int = 0
    findings: list[Finding] = field(default_factory=list)  # not ignored: fail the run
    ignored: list[tuple[Finding, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # packages the service could not audit

    @property
    def unavailable(self) -> bool:
        """The service answered for none of the packages."""
        return self.audited == 0 and bool(self.skipped)


def load_ignores(text: str) -> dict[str, str]:
    """The ignore file's advisories: id -> reason. Each `[[ignore]]` needs both, non-empty."""
    ignores: dict[str, str] = {}
    entries = tomllib.loads(text).get("ignore", [])
    if not isinstance(entries, list):
        raise IgnoreFileError("`ignore` must be a list of [[ignore]] tables")
    for n, entry in enumerate(entries, 1):
        advisory = entry.get("id") if isinstance(entry, dict) else None
        reason = entry.get("reason") if isinstance(entry, dict) else None
        if not isinstance(advisory, str) or not advisory.strip():
            raise IgnoreFileError(f"ignore entry {n} has no advisory id")
        if not isinstance(reason, str) or not reason.strip():
            raise IgnoreFileError(f"ignore entry {n} ({advisory}) has no reason: say why it is accepted")
        if set(entry) - {"id", "reason"}:
            raise IgnoreFileError(
                f"ignore entry {n} ({advisory}): unknown keys {sorted(set(entry) - {'id', 'reason'})}"
            )
        ignores[advisory.strip()] = reason.strip()
    return ignores


def judge(report: dict[str, Any], ignores: dict[str, str]) -> Verdict:
    """A pip-audit JSON report (`-f json`) against the ignore file."""
    verdict = Verdict()
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            verdict.skipped.append(f"{dependency['name']}: {dependency['skip_reason']}")
            continue
        verdict.audited += 1
        for vuln in dependency.get("vulns", []):
            finding = Finding(
                package=dependency["name"],
                version=dependency.get("version", "?"),
                advisory=vuln["id"],
                aliases=tuple(vuln.get("aliases", [])),
                fixed_in=tuple(vuln.get("fix_versions", [])),
            )
            accepted = sorted(finding.names() & set(ignores))
            if accepted:
                verdict.ignored.append((finding, ignores[accepted[0]]))
            else:
                verdict.findings.append(finding)
    return verdict


def run_pip_audit(lock: Path, *, timeout: float = 600) -> dict[str, Any]:
    """pip-audit's JSON report of one lock: PyPI's service, the lock's pins and hashes as they are
    (no resolution, nothing installed)."""
    with tempfile.TemporaryDirectory(prefix="loopgate-audit-") as tmp:
        out = Path(tmp) / "report.json"
        command = [
            *(sys.executable, "-m", "pip_audit"),
            *("--vulnerability-service", "pypi", "--disable-pip", "--require-hashes"),
            *("--requirement", str(lock), "--format", "json", "--output", str(out), "--progress-spinner", "off"),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if not out.exists():  # pip-audit exits 1 with a report when it finds something; without one it failed
            raise RuntimeError(f"pip-audit failed on {lock.name} (exit {done.returncode}):\n{done.stderr[-3000:]}")
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def audit(
    allow_unavailable: Annotated[
        bool,
        typer.Option(help="When PyPI's vulnerability service answers for no package at all: warn, do not fail."),
    ] = False,
) -> None:
    """Audit both locks; exit 1 on a finding not in deploy/audit-ignore.toml or a package not audited."""
    ignores = load_ignores(IGNORE_FILE.read_text())
    failed, used, all_audited = False, set[str](), True
    for lock in LOCKS:
        verdict = judge(run_pip_audit(lock), ignores)
        typer.echo(f"{lock.name}: {verdict.audited} packages audited, {len(verdict.findings)} findings")
        for finding in verdict.findings:
            typer.echo(f"  FINDING {finding}", err=True)
        for finding, reason in verdict.ignored:
            used |= finding.names()
            typer.echo(f"  accepted {finding}: {reason}")
        if verdict.unavailable:
            typer.echo(
                f"  NOT AUDITED: PyPI's vulnerability service answered for none of the {len(verdict.skipped)} "
                f"packages (first: {verdict.skipped[0]})",
                err=True,
            )
            failed |= not allow_unavailable
            all_audited = False
        elif verdict.skipped:
            typer.echo(f"  NOT AUDITED: {len(verdict.skipped)} packages:", err=True)
            for skipped in verdict.skipped:
                typer.echo(f"    {skipped}", err=True)
            failed = True
        failed |= bool(verdict.findings)
    for stale in sorted(set(ignores) - used) if all_audited else ():
        typer.echo(f"deploy/audit-ignore.toml: {stale} matched no finding; remove it once it is no longer needed")
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(audit)
