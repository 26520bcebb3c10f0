"""`make audit` (loopgate_tools.audit): a pip-audit report is judged against
deploy/audit-ignore.toml. A finding fails unless its advisory (by id or alias) is listed with a
reason; a package the service could not audit fails too, since pip-audit alone exits 0 then; a
service that answered for nothing is told apart (a warning with --allow-unavailable)."""

from __future__ import annotations

from typing import Any

import pytest

from loopgate_tools.audit import IGNORE_FILE, Finding, IgnoreFileError, judge, load_ignores

STARLETTE_RANGE = {
    "id": "GHSA-7f5h-v6xp-fcq8",
    "aliases": ["CVE-2025-62727"],
    "fix_versions": ["0.49.1"],
    "description": "Range header parsing is quadratic",
}


def report(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def test_a_finding_not_listed_fails() -> None:
    verdict = judge(
        report({"name": "starlette", "version": "0.48.0", "vulns": [STARLETTE_RANGE]}, clean("fastapi")), {}
    )
    assert verdict.findings == [Finding("starlette", "0.48.0", "GHSA-7f5h-v6xp-fcq8", ("CVE-2025-62727",), ("0.49.1",))]
    assert verdict.audited == 2 and not verdict.unavailable
    assert str(verdict.findings[0]) == "starlette 0.48.0: GHSA-7f5h-v6xp-fcq8 (CVE-2025-62727); fixed in 0.49.1"


@pytest.mark.parametrize("listed", ["GHSA-7f5h-v6xp-fcq8", "CVE-2025-62727"])
def test_a_finding_listed_by_its_id_or_an_alias_is_accepted_with_its_reason(listed: str) -> None:
    verdict = judge(
        report({"name": "starlette", "version": "0.48.0", "vulns": [STARLETTE_RANGE]}),
        {listed: "no FileResponse served"},
    )
    assert verdict.findings == []
    assert [(f.advisory, reason) for f, reason in verdict.ignored] == [
        ("GHSA-7f5h-v6xp-fcq8", "no FileResponse served")
    ]


def test_a_package_that_could_not_be_audited_is_reported() -> None:
    skipped = {"name": "faust-streaming", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    verdict = judge(report(clean("fastapi"), skipped), {})
    assert verdict.skipped == ["faust-streaming: Dependency not found on PyPI and could not be audited"]
    assert not verdict.unavailable


def test_a_service_that_answered_for_no_package_is_unavailable() -> None:
    verdict = judge(report({"name": "fastapi", "skip_reason": "not found"}, {"name": "h11", "skip_reason": "x"}), {})
    assert verdict.unavailable and verdict.audited == 0


def clean(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": []}


def test_every_ignore_entry_needs_an_id_and_a_reason() -> None:
    assert load_ignores('[[ignore]]\nid = "GHSA-1"\nreason = "dev only"\n') == {"GHSA-1": "dev only"}
    for text, message in (
        ('[[ignore]]\nid = "GHSA-1"\n', "no reason"),
        ('[[ignore]]\nid = "GHSA-1"\nreason = "  "\n', "no reason"),
        ('[[ignore]]\nreason = "dev only"\n', "no advisory id"),
        ('[[ignore]]\nid = "GHSA-1"\nreason = "x"\nuntil = 2027\n', "unknown keys"),
        ('ignore = "GHSA-1"\n', "must be a list"),
    ):
        with pytest.raises(IgnoreFileError, match=message):
            load_ignores(text)


def test_the_projects_ignore_file_reads() -> None:
    load_ignores(IGNORE_FILE.read_text())
