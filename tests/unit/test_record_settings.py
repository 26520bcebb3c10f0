"""The window a record's detected_at must lie in comes from the environment: a value that cannot
work is refused at start naming the setting, never taken as no window at all."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from loopgate.common.settings import Settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "0"),
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "-1"),
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "nan"),
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "inf"),
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "1e12"),  # thousands of years: back to year 1
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", "30d"),
        ("LOOPGATE_RECORD_MAX_AGE_SECONDS", ""),
        ("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "-1"),
        ("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "nan"),
        ("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "inf"),
        ("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "86401"),
        ("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "5min"),
    ],
)
def test_a_record_window_that_cannot_work_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    field = variable.removeprefix("LOOPGATE_").lower()
    assert [e["loc"] for e in refused.value.errors()] == [(field,)]


def test_the_record_window_defaults_to_30_days_back_and_5_minutes_ahead_and_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (Settings().record_max_age_seconds, Settings().record_max_ahead_seconds) == (30 * 86400, 300)
    monkeypatch.setenv("LOOPGATE_RECORD_MAX_AGE_SECONDS", "3600")
    monkeypatch.setenv("LOOPGATE_RECORD_MAX_AHEAD_SECONDS", "0")
    assert (Settings().record_max_age_seconds, Settings().record_max_ahead_seconds) == (3600, 0)
