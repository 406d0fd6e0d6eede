"""One PostgreSQL connection that outlives the server: transactions retried across outages.

Why our own small wrapper rather than a pool: the journal is written by one thread (the
service loop) and read by a few (watchers, upkeep), exactly like the SQLite journal's one
connection and one lock; what a pool would add is reconnecting, which is the part that must
follow the journal's rules anyway (:mod:`daemon.journal.backend`): a transaction that failed
because the server went away is *retried whole* once it answers again, and nothing else
happens meanwhile.

psycopg's errors are translated here: ``OperationalError`` (connection refused, server
restarting, connection lost) means wait and retry (:class:`DatabaseWait`); errors that mean
the schema is missing or refused become :class:`~daemon.errors.JournalUnusable`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from daemon.errors import DatabaseUnavailable, JournalUnusable

T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.Connection[Row]

#: Longest pause between two reconnection tries.
MAX_PAUSE_SECONDS = 2.0
#: Seconds a connection attempt may take (a server that is gone from the network never answers).
CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class DatabaseWait:
    """One episode of journal transitions waiting for the server: what failed, how long so far."""

    database: str
    error: str
    tries: int = 1
    waited: float = 0.0
    over: bool = False

    @property
    def pause(self) -> float:
        return min(MAX_PAUSE_SECONDS, 0.1 * 2 ** (self.tries - 1))

    def next(self, error: str) -> DatabaseWait:
        return replace(self, error=error, tries=self.tries + 1, waited=self.waited + self.pause)

    def resolved(self) -> DatabaseWait:
        return replace(self, over=True)


def redacted(conninfo: str) -> str:
    """The connection string without its password, for logs and messages."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "(an invalid database string)"
    host, db, user = params.get("host", "localhost"), params.get("dbname", ""), params.get("user", "")
    return f"postgresql://{user}{'@' if user else ''}{host}:{params.get('port', 5432)}/{db}"


def connect(conninfo: str) -> Connection:
    """A new autocommit connection (transactions are explicit); :class:`DatabaseUnavailable` if none."""
    try:
        return psycopg.connect(
            conninfo, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
    except psycopg.OperationalError as exc:
        detail = " ".join(str(exc).split())  # libpq's hint is on a second line: one line in all
        raise DatabaseUnavailable(
            f"cannot reach the cluster database {redacted(conninfo)}: {detail}"
        ) from exc


def _lost(exc: BaseException) -> bool:
    """The server went away (or never answered): wait and retry, never the transition's fault."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)) and not (
        isinstance(exc, psycopg.errors.InsufficientPrivilege)
    )


class Database:
    """A connection, a lock, and :meth:`transact` that waits out outages (module docstring)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.name = redacted(conninfo)
        self._lock = threading.Lock()
        self._conn: Connection | None = connect(conninfo)
        #: Called (without the lock) while a transaction waits for the server; may raise to give up.
        self.on_unavailable: Callable[[DatabaseWait], None] | None = None
        #: Called (with the lock held, on the new connection) after a reconnection.
        self.on_reconnect: Callable[[Connection], None] | None = None
        self.fault: JournalUnusable | None = None
        self.round_trips = 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.conninfo)
            if self.on_reconnect is not None:
                self.on_reconnect(self._conn)
        return self._conn

    def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction; while the server is away, wait and run it again."""
        wait: DatabaseWait | None = None
        while True:
            try:
                with self._lock:
                    conn = self._connection()
                    with conn.transaction():
                        result = work(conn)
            except Exception as exc:
                if not _lost(exc):
                    raise self._translate(exc) from exc
                self._drop()
                wait = wait.next(str(exc)) if wait is not None else DatabaseWait(self.name, str(exc))
                if self.on_unavailable is not None:
                    self.on_unavailable(wait)
                time.sleep(wait.pause)
                continue
            if wait is not None and self.on_unavailable is not None:
                self.on_unavailable(wait.resolved())
            return result

    def execute(self, conn: Connection, sql: str, params: Any = None) -> psycopg.Cursor[Row]:
        """``conn.execute``, counted (the benchmark reports round trips per file)."""
        self.round_trips += 1
        return conn.execute(sql, params)

    def _drop(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
                self._conn = None

    def _translate(self, exc: Exception) -> Exception:
        """A missing table or function, or no right to use it: the journal cannot be trusted."""
        refused = (
            psycopg.errors.UndefinedTable,
            psycopg.errors.UndefinedFunction,
            psycopg.errors.InsufficientPrivilege,
        )
        if isinstance(exc, refused):
            fault = JournalUnusable(
                f"the cluster database {self.name} cannot be used ({str(exc).splitlines()[0]});"
                " check that the hotmatte role owns it, then start a node to create the schema"
            )
            if self.fault is None:
                self.fault = fault
            return fault
        return exc
