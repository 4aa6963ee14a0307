"""Shared fixtures: a real MariaDB server and a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mariadb import MariaDB, machine_or_private

# b2b_fake, b2b_backend, snelstart_backend (local and b2b), snelstart_setup for every client test.
pytest_plugins = ["tests.client.conftest_b2b"]


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = machine_or_private()
    yield server
    if server.private is not None:
        server.private.cleanup()


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[str]:
    """An empty utf8mb4 database with a unique name, dropped afterwards."""
    name = mariadb.create_database()
    yield name
    mariadb.drop_database(name)
