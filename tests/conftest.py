"""Fixtures shared by every test: real PostgreSQL and Redis servers and per-test databases.

App-specific fixtures belong in tests/integration/conftest.py, not here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import PostgresServer, RedisServer, start_or_missing

# Tests that use these fixtures get the marker, so `-m "not postgres"` deselects them too.
MARKER_FOR_FIXTURE = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "redis_server": "redis",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "redis: needs a real Redis server started by the tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for marker in {MARKER_FOR_FIXTURE[name] for name in fixtures if name in MARKER_FOR_FIXTURE}:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with start_or_missing(PostgresServer.start) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with start_or_missing(RedisServer.start) as server:
        yield server


def _database_name(request: pytest.FixtureRequest) -> str:
    # Readable in server logs, unique across tests and xdist workers.
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{stem}_{secrets.token_hex(4)}"


def _fresh_postgres_database(request: pytest.FixtureRequest) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = _database_name(request)
    url = server.create_database(name)
    yield url
    server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/test.db"


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _fresh_postgres_database(request)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database of each supported kind; Postgres is started only when needed."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
    else:
        yield from _fresh_postgres_database(request)
