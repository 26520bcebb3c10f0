"""Fixtures shared by every test; the broker and service fixtures live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.api",
]
