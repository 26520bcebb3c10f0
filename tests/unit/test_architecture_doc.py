"""docs/architecture.md names files and the functions in them along one resolution's path: each
file it names exists and each `file.py` `name` pair is defined there, so the map fails CI the day
the code moves without it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# Where a path the note names may start (it writes the API's own paths without their prefix).
BASES = [ROOT / "services" / "loopgate" / "resolution_api", ROOT / "services" / "loopgate", ROOT / "schemas"]
PATH_THEN_NAME = re.compile(r"`([\w/]+\.py)` `(\w+)")


def _resolve(path: str) -> Path | None:
    return next((base / path for base in BASES if (base / path).is_file()), None)


def _path_section() -> str:
    return DOC.read_text().split("## One resolution, module by module", 1)[1]


def test_every_file_on_the_resolution_path_exists() -> None:
    named = set(re.findall(r"`([\w/]+\.py)`", _path_section()))
    assert len(named) > 15
    assert sorted(p for p in named if _resolve(p) is None) == []


def test_every_function_named_beside_its_file_is_defined_there() -> None:
    pairs = PATH_THEN_NAME.findall(_path_section())
    assert len(pairs) > 15
    missing = []
    for path, name in pairs:
        found = _resolve(path)
        assert found is not None, path
        if not re.search(rf"^\s*(async def|def|class) {name}\b|^{name}\s*[:=]", found.read_text(), re.M):
            missing.append(f"{path} {name}")
    assert missing == []


def test_the_readme_points_to_the_note() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()
