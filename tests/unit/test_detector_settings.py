"""The detector's batch bounds come from the environment: a value that cannot work is refused at
start naming the setting, never taken as unbounded or as no batch at all."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loopgate.common.settings import Settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "0"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "-1"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "100001"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "2000.5"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "lots"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", ""),
        ("LOOPGATE_DETECTOR_BATCH_MAX_BYTES", "1024"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_BYTES", "1e12"),
        ("LOOPGATE_DETECTOR_BATCH_MAX_BYTES", str(2**63)),
        ("LOOPGATE_DETECTOR_BATCH_MAX_BYTES", "4MiB"),
    ],
)
def test_a_batch_bound_that_cannot_work_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    field = variable.removeprefix("LOOPGATE_").lower()
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_the_batch_bounds_default_to_2000_records_and_4_mib_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (Settings().detector_batch_max_records, Settings().detector_batch_max_bytes) == (2000, 4 * 1024 * 1024)
    monkeypatch.setenv("LOOPGATE_DETECTOR_BATCH_MAX_RECORDS", "1")
    monkeypatch.setenv("LOOPGATE_DETECTOR_BATCH_MAX_BYTES", "65536")
    assert (Settings().detector_batch_max_records, Settings().detector_batch_max_bytes) == (1, 65536)
