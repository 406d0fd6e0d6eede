"""What the service does while a journal transition waits: SQLite's disk is full, or (cluster
mode) the database does not answer.

The journal retries the same transition itself (:mod:`daemon.journal.backend`); these hooks,
called on each try, say so once (a log line and systemd's ``STATUS=``), keep the watchdog fed
(waiting is not a stall) and, when a stop was asked for meanwhile, give up the wait by raising
:class:`StopWhileJournalFull`, which the loop turns into an undrained exit 0.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon.journal.backend import JournalBackend
from daemon.journal.cluster import ClusterJournal
from daemon.journal.cluster_db import DatabaseWait
from daemon.journal.faults import DiskFullWait
from daemon.service.liveness import Liveness
from daemon.service.notify import Notifier

log = structlog.get_logger("hotmatte")


class StopWhileJournalFull(Exception):
    """Asked to stop while a journal write waits for disk space: exit without that transition."""


class JournalWaits:
    """The journal's wait hooks for one service (see the module docstring)."""

    def __init__(self, notifier: Notifier, liveness: Liveness, stop_requested: Callable[[], bool]) -> None:
        self._notifier = notifier
        self._liveness = liveness
        self._stop_requested = stop_requested
        self._journal_full: DiskFullWait | None = None

    def attach(self, journal: JournalBackend) -> None:
        journal.on_disk_full = self.journal_disk_full
        if isinstance(journal, ClusterJournal):
            journal.on_unavailable = self.database_unavailable

    def journal_disk_full(self, wait: DiskFullWait) -> None:
        """Called by the journal while a write waits for space: say so once, keep the watchdog fed."""
        if wait.over:
            self._journal_full = None
            log.info("journal_space_back", journal=str(wait.path), waited=round(wait.waited, 1))
            return
        if self._journal_full is None:
            log.error(
                "journal_disk_full", journal=str(wait.path), error=wait.error, waiting="until space returns"
            )
        self._journal_full = wait
        self._notifier.status(f"waiting for disk space for the journal {wait.path}")
        self._liveness.waiting()
        if self._stop_requested():
            raise StopWhileJournalFull

    def database_unavailable(self, wait: DatabaseWait) -> None:
        """Cluster mode: a journal transition waits for the server. No work is taken meanwhile."""
        if wait.over:
            self._journal_full = None
            log.info("database_back", database=wait.database, waited=round(wait.waited, 1))
            return
        if wait.tries == 1:
            log.error(
                "database_unavailable", database=wait.database, error=wait.error, waiting="until it answers"
            )
            self._notifier.status(f"waiting for the cluster database {wait.database}")
        self._liveness.waiting()
        if self._stop_requested():
            raise StopWhileJournalFull
