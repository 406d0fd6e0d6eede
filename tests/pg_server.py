"""PostgreSQL for the cluster tests: a given server, the local one, or a throw-away one.

Order: ``HOTMATTE_TEST_DATABASE`` (a libpq URL whose role may create databases), else
127.0.0.1:5432 when it answers, else a throw-away server from Debian's ``postgresql`` package
(``initdb`` + ``pg_ctl`` in a temporary directory, installed with apt-get when absent and we
are root). PostgreSQL refuses to run as root, so as root the server runs as ``nobody``.
Tests that need a server *fail* when none can be had: CI must not silently skip them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ENV = "HOTMATTE_TEST_DATABASE"
LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"


def answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env, timeout=600)
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL server for the cluster tests: set {ENV} or install postgresql")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ThrowAwayServer:
    """A PostgreSQL server in a temporary directory, ours to stop and restart."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotmatte-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
            self._as = ["runuser", "-u", "nobody", "--"]
        self._pg(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        self.start()

    @property
    def conninfo(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=120, cwd=self.dir)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg(
            _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._pg(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def server_conninfo() -> tuple[str, ThrowAwayServer | None]:
    """An admin connection string, and the throw-away server when one had to be started."""
    given = os.environ.get(ENV)
    if given:
        return given, None
    if answers(LOCAL):
        return LOCAL, None
    server = ThrowAwayServer()
    return server.conninfo, server


@contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new empty database on ``admin``'s server for one test, dropped afterwards."""
    name = f"hotmatte_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
