"""Shared test set-up. Fixture modules live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.providers",
    "tests.fixtures.inprocess",
    "tests.fixtures.postgres",
    "tests.fixtures.parallel",
    "tests.fixtures.browser",
]
