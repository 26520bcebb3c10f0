"""The API benchmark runs end to end at a tiny size: real API processes on SQLite and on a throwaway
PostgreSQL, the real dispatcher on the real broker. Every figure is there and positive; no timing
is asserted (the benchmark reports against its targets, the tests do not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopgate_tools.bench.api import Sizes, run_api_benchmarks

TINY = Sizes(creates=60, resolves=20, stored=300, list_requests=20, storm=400, bulk=100)
API_FIGURES = [
    "creates per second",
    "create p50 latency",
    "create p99 latency",
    "resolves per second",
    "list p50 latency (",
    "list p99 latency (",
    "storm: records per second",
    "operator list p99 during the storm",
    "bulk resolve of 100 exceptions",
]


@pytest.mark.kafka
@pytest.mark.postgres
def test_every_api_and_dispatcher_figure_is_measured(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPGATE_KAFKA_BOOTSTRAP", kafka_bootstrap)

    results = run_api_benchmarks(tmp_path, quick=True, sizes=TINY)

    names = [(r["group"], r["name"]) for r in results]
    expected = [(g, n) for g in ("api-sqlite", "api-postgres") for n in API_FIGURES]
    for group, prefix in expected:
        assert [n for g, n in names if g == group and n.startswith(prefix)], (group, prefix, names)
    assert len(results) == len(expected)
    assert all(r["value"] > 0 for r in results), results
    assert {r["unit"] for r in results} == {"/s", "ms"}
    assert all(r["met"] is None if not r["target"] else isinstance(r["met"], bool) for r in results)
    # 300 loaded + 32 warm-up creates + 60 measured creates
    assert "list p99 latency (392 stored)" in [n for g, n in names if g == "api-sqlite"]
