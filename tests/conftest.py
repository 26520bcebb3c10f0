"""Fixtures shared by every test; the broker and service fixtures live in tests/fixtures/."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.kafka_cluster",
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.api",
    "tests.fixtures.receivers",
    "tests.fixtures.smtp",
    "tests.fixtures.keycloak",
    "tests.fixtures.jaeger",
    "tests.fixtures.compose",
]

# Seconds a test may take before pytest-timeout stops it, by its kind: a hung unit test is found in
# a minute, not ten. The first marker that matches wins, then the folder.
TIMEOUTS = {"chaos": 1800, "e2e": 600, "postgres": 300, "kafka": 300}
FOLDER_TIMEOUTS = {"unit": 60, "integration": 300}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue  # a test that sets its own keeps it
        seconds = next((t for marker, t in TIMEOUTS.items() if item.get_closest_marker(marker)), None)
        if seconds is None:
            seconds = next((t for folder, t in FOLDER_TIMEOUTS.items() if folder in item.path.parts), 600)
        item.add_marker(pytest.mark.timeout(seconds))
