"""docs/review-load.md and the README's opening figure are what `loopgate-tools evaluate --review-load`
writes today: regenerated with the doc's own options and compared, so neither goes stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loopgate.detector.config import load_detection_config
from loopgate.resolution_api.queues.routing import load_routes
from loopgate_tools.review_load import Options, ReviewLoad, measure
from loopgate_tools.review_load_doc import headline, markdown

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "review-load.md"
STALE = "stale: run `loopgate-tools evaluate --review-load` from the repository root"


@pytest.fixture(scope="module")
def committed() -> ReviewLoad:
    return measure(Options(), load_detection_config(), load_routes())


def test_the_committed_doc_is_what_the_default_options_write(committed: ReviewLoad) -> None:
    assert DOC.read_text() == markdown(committed), f"docs/review-load.md is {STALE}"


def test_the_readme_opens_with_the_measured_headline(committed: ReviewLoad) -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    opening = readme[: readme.index("It is written for")]
    assert " ".join(headline(committed).split()) in opening, f"the README's review-load sentence is {STALE}"


def test_the_committed_plot_is_a_small_png_the_doc_shows() -> None:
    plot = ROOT / "docs" / "review-load.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size < 150_000
    assert re.search(r"!\[[^\]]*\]\(review-load\.png\)", DOC.read_text())
