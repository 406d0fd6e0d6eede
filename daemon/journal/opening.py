"""Which journal a config means: the service's own, or a reader's (the console, ``hotmatte retry``).

Without ``cluster:`` both are the SQLite journal at ``journal:`` (WAL lets a reader's connection
read while the service writes, and its writes wait on SQLite's busy timeout). With it both are
:class:`~daemon.journal.cluster.ClusterJournal` on the shared database; only the service's is a
Procrastinate worker (heartbeats, claims). A reader that is not a worker still may requeue
failed files: the requeued job is fetched by whichever worker node is free.
"""

from __future__ import annotations

from daemon.config import Config
from daemon.errors import DatabaseUnavailable
from daemon.journal.backend import JournalBackend
from daemon.journal.cluster import ClusterJournal
from daemon.journal.cluster_db import DatabaseWait
from daemon.journal.store import Journal

#: How long a ``/metrics`` scrape waits for a cluster database that stopped answering: a scrape
#: must stay cheap (Prometheus times out at 10 s by default), and its next one connects again.
#: Measured: a connection that lost its server gives up after 1.5 s (pauses 0.1 + 0.2 + 0.4 + 0.8);
#: later scrapes are refused at connect in about a millisecond (a host gone from the network
#: without a refusal: up to cluster_db.CONNECT_TIMEOUT_SECONDS).
SCRAPE_PATIENCE_SECONDS = 1.0


def open_journal(config: Config) -> JournalBackend:
    """The service's journal: SQLite, or with ``cluster:`` the shared PostgreSQL one (this node a worker)."""
    if config.cluster is not None:
        return ClusterJournal(config.cluster, config.journal)
    return Journal.open(config.journal)


def open_reader(config: Config, give_up_after: float | None = None) -> JournalBackend:
    """A connection of its own for a reader that is not the service.

    ``give_up_after``: in cluster mode, seconds a statement waits for a server that went away
    before it raises :class:`~daemon.errors.DatabaseUnavailable` (None: wait as the service
    does). A web page must answer, so the console gives up; its next request connects again.
    Raises DatabaseUnavailable at once when the server does not answer at all.
    """
    if config.cluster is None:
        return Journal.open(config.journal)
    journal = ClusterJournal(config.cluster, config.journal, worker=False)
    if give_up_after is not None:
        limit = give_up_after

        def give_up(wait: DatabaseWait) -> None:
            if not wait.over and wait.waited >= limit:
                raise DatabaseUnavailable(
                    f"the cluster database {wait.database} does not answer: {wait.error}"
                )

        journal.on_unavailable = give_up
    return journal


def open_counter(config: Config) -> JournalBackend:
    """The connection ``/metrics`` counts the queue through (never the service's own).

    Without ``cluster:`` the SQLite journal read-only (a scrape never creates or changes it);
    with it a reader (:func:`open_reader`) that gives up after :data:`SCRAPE_PATIENCE_SECONDS`.
    """
    if config.cluster is None:
        return Journal.open_read_only(config.journal)
    return open_reader(config, give_up_after=SCRAPE_PATIENCE_SECONDS)
