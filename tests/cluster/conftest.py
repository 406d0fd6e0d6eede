"""Fixtures of the cluster tests: a real PostgreSQL (tests/pg_server.py), one database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_server import ThrowAwayServer, fresh_database, server_conninfo
from tests.service_harness import small_photo_jpeg


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[str]:
    """An admin connection string to a server that answers; fails (never skips) when none can be had."""
    conninfo, server = server_conninfo()
    yield conninfo
    if server is not None:
        server.destroy()


@pytest.fixture
def database(pg_admin: str) -> Iterator[str]:
    """A fresh database for this test, dropped after it."""
    with fresh_database(pg_admin) as conninfo:
        yield conninfo


@pytest.fixture
def own_server() -> Iterator[ThrowAwayServer]:
    """A throw-away server this test may stop and restart (never the shared one)."""
    server = ThrowAwayServer()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return small_photo_jpeg()
