"""A cluster node's heartbeat thread, and its sweep of the other nodes' stalled jobs.

Every ``heartbeat_seconds`` the node updates its Procrastinate worker's heartbeat and its
``hotmatte_nodes`` row, on a connection of its own (a heartbeat must never wait behind the
service loop's transactions, or a busy node would look dead). Then it takes back the files of
nodes silent for ``stalled_after_seconds``: Procrastinate's stalled-job query, each job locked
and checked again, its file row put back to ``pending`` (a crash counted, the claim token
raised so the silent node's late outcome is fenced) and the job retried, in one transaction.
Every node sweeps, so any survivor recovers a dead node's files.

Part of :class:`daemon.journal.cluster.ClusterJournal` (it uses that object's settings, claims
and registration), kept in its own module for size.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from daemon.journal import cluster_jobs as jobs
from daemon.journal.cluster_db import Connection, Database
from daemon.journal.cluster_reads import entry_of

if TYPE_CHECKING:
    from daemon.journal.cluster import ClusterJournal

log = structlog.get_logger("hotmatte")


def heartbeats(journal: ClusterJournal) -> None:
    """Own connection, own thread: a heartbeat must not wait behind the loop's transactions."""
    beat_db: Database | None = None
    every = journal.settings.heartbeat_seconds
    failing = False
    # After our own outage the others' heartbeats look old too: sweep only once they had time
    # to beat again, or a restart of the server would make every node take every other's files.
    sweep_from = 0.0
    while not journal._stop.wait(every):
        try:
            if beat_db is None:
                beat_db = Database(journal.settings.database)
            with beat_db._lock:  # one thread, plain calls: no waiting-out here
                conn = beat_db._connection()
                with conn.transaction():
                    if not jobs.heartbeat(beat_db, conn, journal.worker_id):
                        # The others took us for dead and took our files back; our claims are
                        # stale (fenced). Register again to take new work.
                        journal.worker_id = journal._register(conn)
                        log.warning("cluster_rejoined", node=journal.node, worker=journal.worker_id)
                    journal._q(
                        conn,
                        "UPDATE hotmatte_nodes SET last_seen = now(), running = %s WHERE node = %s",
                        (len(journal._claims), journal.node),
                    )
                if failing:
                    failing = False
                    sweep_from = time.monotonic() + 2 * every
                    log.info("cluster_heartbeat_back", node=journal.node)
                if time.monotonic() >= sweep_from:
                    _sweep(journal, beat_db, conn)
        except Exception as exc:  # the server is away: try again at the next beat
            if not failing:
                failing = True
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("cluster_heartbeat_failed", node=journal.node, error=reason)
            if beat_db is not None:
                beat_db._drop()
    if beat_db is not None:
        beat_db.close()


def _sweep(journal: ClusterJournal, db: Database, conn: Connection) -> None:
    """Take back the files of nodes silent for ``stalled_after_seconds`` (stalled jobs)."""
    seconds = journal.settings.stalled_after_seconds
    with conn.transaction():
        stalled = jobs.stalled_jobs(db, conn, seconds)
    for job in stalled:
        with conn.transaction():
            if not jobs.still_stalled(db, conn, job["id"], seconds):
                continue
            rows = journal._q(
                conn,
                "UPDATE hotmatte_files SET state = 'pending', crashes = crashes + 1, claim = claim + 1,"
                " claimed_by = NULL, updated_at = %s WHERE job_id = %s AND state = 'running' RETURNING *",
                (time.time(), job["id"]),
            )
            if rows:
                jobs.retry(db, conn, job["id"])
                journal._event(conn, "stalled", rows[0], rows[0]["claim"], f"worker {job['worker_id']}")
                log.warning(
                    "taken_back",
                    folder=rows[0]["folder"],
                    path=entry_of(rows[0]).path,
                    worker=job["worker_id"],
                )
            else:
                jobs.finish(db, conn, job["id"], "succeeded")
