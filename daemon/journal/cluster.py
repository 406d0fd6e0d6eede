"""The journal of cluster mode: the same states and methods as the SQLite journal, in PostgreSQL.

Several nodes (``cluster: {database, node}``) share one database. The file rows live in
``hotmatte_files`` (the SQLite ``files`` columns, plus ``claim``, ``claimed_by`` and ``job_id``),
every transition is also an ``hotmatte_events`` row (who queued, claimed, finished a file), and
the work itself is a Procrastinate job (:mod:`daemon.journal.cluster_jobs`). Each journal
transition and its job transition happen in one transaction.

Exactly once visible: a file may be *processed* twice (a node presumed dead that was only
slow, or cut off from the database, finishes a file another node took back), but:

- outputs are written to a temporary and renamed in the same directory
  (:mod:`daemon.finish.outputs`), so the visible output is always one whole file, and two
  nodes' renames of the same version replace it with the same content;
- outcomes are **fenced**: a claim raises the row's ``claim`` token and remembers it; an
  outcome is recorded only while the row still carries that token, so a stale node's outcome
  changes nothing and is recorded as a ``stale`` event (and logged ``stale_outcome``).
  Only the current claim's ``done`` is a ``done`` event: one per file version.

Failure semantics are those of :mod:`daemon.journal.backend`; the server being away is waited
out (:class:`daemon.journal.cluster_db.Database`), and a node whose heartbeats were missed for
``stalled_after_seconds`` loses its claims to the others.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import structlog

from daemon.config import Cluster
from daemon.errors import JournalUnusable
from daemon.journal import cluster_jobs as jobs
from daemon.journal.cluster_admin import ClusterAdmin, fingerprint_params
from daemon.journal.cluster_db import Connection, Database, DatabaseWait, Row
from daemon.journal.cluster_heartbeat import heartbeats
from daemon.journal.cluster_reads import entry_of
from daemon.journal.faults import DiskFullWait
from daemon.journal.names import printable
from daemon.journal.store import Entry, Fingerprint

log = structlog.get_logger("hotmatte")


class ClusterJournal(ClusterAdmin):
    """:class:`daemon.journal.backend.JournalBackend` on PostgreSQL + Procrastinate (module docstring)."""

    def __init__(self, settings: Cluster, path: Path, *, worker: bool = True) -> None:
        """``path``: the local journal path, beside which per-node state is kept (never opened).

        ``worker``: register as a Procrastinate worker and heartbeat (``hotmatte run``); False
        for tools that only read or copy (``status``, ``journal migrate``).
        """
        self.settings = settings
        self.node = settings.node
        self.path = path
        self.on_disk_full: Callable[[DiskFullWait], None] | None = None  # PostgreSQL's disk is not ours
        self._db = Database(settings.database)
        self._db.transact(lambda c: jobs.install_schema(self._db, c))
        #: entry id → (claim token, job id) of the files this node runs.
        self._claims: dict[int, tuple[int, int | None]] = {}
        self.worker_id = 0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if worker:
            # Per-node state (roots' markers, stage timings) is kept beside the local journal path.
            path.parent.mkdir(parents=True, exist_ok=True)
            self.worker_id = self._db.transact(self._register)
            self._db.on_reconnect = self._reconciled
            self._beat = threading.Thread(
                target=heartbeats, args=(self,), name="cluster-heartbeat", daemon=True
            )
            self._beat.start()

    # --- the backend's attributes --------------------------------------------------------------

    @property
    def fault(self) -> JournalUnusable | None:
        return self._db.fault

    @property
    def on_unavailable(self) -> Callable[[DatabaseWait], None] | None:
        return self._db.on_unavailable

    @on_unavailable.setter
    def on_unavailable(self, hook: Callable[[DatabaseWait], None] | None) -> None:
        self._db.on_unavailable = hook

    @property
    def round_trips(self) -> int:
        return self._db.round_trips

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
            try:
                self._db.transact(self._unregister)
            except Exception as exc:  # closing: the others will find us stalled anyway
                log.warning("cluster_unregister_failed", error=str(exc))
        self._db.close()

    # --- arrivals -------------------------------------------------------------------------------

    def get_by_id(self, entry_id: int) -> Entry | None:
        """The row; the loop asks this as each outcome arrives (daemon.service.outcomes).

        A file offered again while this node ran it has a new row, and the old one is gone: the
        outcome is superseded, and the old job (whose lock kept the new version waiting, so two
        versions never run at once on two nodes) is finished now that our run is over.
        """
        entry = super().get_by_id(entry_id)
        if entry is None and entry_id in self._claims:
            _, job_id = self._claims.pop(entry_id)
            self._db.transact(lambda c: jobs.finish(self._db, c, job_id, "succeeded"))
        return entry

    def offer(self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False) -> bool:
        """Record a complete file and queue its job; True if it became (or became again) pending.

        Several nodes may offer the same file at once: the row is locked, so one of them queues it.
        """
        raw = os.fsencode(path)

        def change(conn: Connection) -> bool:
            now = time.time()
            old = self._q(
                conn, "SELECT * FROM hotmatte_files WHERE folder = %s AND path = %s FOR UPDATE", (folder, raw)
            )
            if old:
                entry = entry_of(old[0])
                if entry.fingerprint == fingerprint and not (redo_done and entry.state == "done"):
                    return False
                # A new version: a new row (as in SQLite), so the old one's outcome finds it gone.
                self._q(conn, "DELETE FROM hotmatte_files WHERE id = %s", (entry.id,))
                if entry.state == "pending":
                    jobs.cancel(self._db, conn, old[0]["job_id"])
            inserted = self._q(
                conn,
                "INSERT INTO hotmatte_files (folder, path, size, mtime_ns, profile_hash, pipeline_version,"
                " state,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', %s)"
                " ON CONFLICT (folder, path) DO NOTHING RETURNING *",
                (folder, raw, *fingerprint_params(fingerprint), now),
            )
            if not inserted:  # another node inserted it between our SELECT and INSERT: theirs to queue
                return False
            row = inserted[0]
            job_id = jobs.defer(self._db, conn, folder, path, row["id"], fingerprint_params(fingerprint))
            self._q(conn, "UPDATE hotmatte_files SET job_id = %s WHERE id = %s", (job_id, row["id"]))
            self._event(conn, "queued", row)
            return True

        return self._db.transact(change)

    # --- work -----------------------------------------------------------------------------------

    def claim(self, folders: Collection[str], now: float | None = None) -> Entry | None:
        """Fetch this node's next job (Procrastinate, no prefetch) and mark its file running."""
        if not folders or self.worker_id == 0:
            return None
        wanted = list(folders)

        def take(conn: Connection) -> Row | None:
            while (job := jobs.fetch(self._db, conn, wanted, self.worker_id)) is not None:
                stamp = time.time() if now is None else now
                rows = self._q(
                    conn,
                    "UPDATE hotmatte_files SET state = 'running', claim = claim + 1, claimed_by = %s,"
                    " started_at = %s, updated_at = %s WHERE job_id = %s AND state = 'pending' RETURNING *",
                    (self.node, stamp, stamp, job["id"]),
                )
                if rows:
                    self._event(conn, "claimed", rows[0], rows[0]["claim"])
                    return rows[0]
                # Its file changed, vanished or was settled since it was queued: nothing to do.
                jobs.finish(self._db, conn, job["id"], "succeeded")
            return None

        row = self._db.transact(take)
        if row is None:
            return None
        self._claims[row["id"]] = (row["claim"], row["job_id"])
        return entry_of(row)

    def has_due_work(self, folders: Collection[str], now: float | None = None) -> bool:
        if not folders:
            return False
        return self._db.transact(lambda c: jobs.has_due(self._db, c, list(folders)))

    def _settle(
        self,
        entry_id: int,
        kind: str,
        sql: str,
        params: tuple[object, ...],
        job: Callable[[Connection, int | None], None],
        detail: str = "",
    ) -> bool:
        """One fenced outcome: applied only while the row still carries this node's claim."""
        claim = self._claims.pop(entry_id, None)

        def change(conn: Connection) -> bool:
            args: tuple[object, ...] = ()
            if claim is None:  # not claimed by this run (start-up recovery): only a row nobody runs
                guard = "state = 'pending' AND claimed_by IS NULL"
            else:
                guard, args = "claim = %s AND state = 'running'", (claim[0],)
            rows = self._q(
                conn,
                f"UPDATE hotmatte_files SET {sql}, claimed_by = NULL, updated_at = %s"
                f" WHERE id = %s AND {guard}"
                " RETURNING *",
                (*params, time.time(), entry_id, *args),
            )
            if not rows:
                if claim is not None:
                    stale = self._q(conn, "SELECT * FROM hotmatte_files WHERE id = %s", (entry_id,))
                    if stale:
                        self._event(conn, "stale", stale[0], claim[0], kind)
                return False
            job(conn, rows[0]["job_id"])
            self._event(conn, kind, rows[0], claim[0] if claim else None, detail)
            return True

        applied = self._db.transact(change)
        if not applied and claim is not None:
            log.warning(
                "stale_outcome", entry=entry_id, outcome=kind, reason="another node took the file back"
            )
        return applied

    def unclaim(self, entry_id: int) -> None:
        self._settle(entry_id, "unclaimed", "state = 'pending'", (), lambda c, j: jobs.retry(self._db, c, j))

    def mark_done(
        self, entry_id: int, output: str | None, confidence: float | None = None, review: bool = False
    ) -> None:
        self._settle(
            entry_id,
            "done",
            "state = 'done', output = %s, confidence = %s, review = %s, last_error = NULL,"
            " error_class = NULL,"
            " crashes = 0",
            (None if output is None else printable(output), confidence, int(review)),
            lambda c, j: jobs.finish(self._db, c, j, "succeeded"),
        )

    def mark_failed(self, entry_id: int, error_class: str, reason: str) -> None:
        self._settle(
            entry_id,
            "failed",
            "state = 'failed', error_class = %s, last_error = %s, attempts = attempts + 1, crashes = 0",
            (error_class, printable(reason)),
            lambda c, j: jobs.finish(self._db, c, j, "failed"),
            f"{error_class}: {reason}",
        )

    def retry_later(
        self, entry_id: int, error_class: str, reason: str, next_attempt: float, *, count_attempt: bool = True
    ) -> None:
        counted = ", attempts = attempts + 1, crashes = 0" if count_attempt else ""
        self._settle(
            entry_id,
            "retry",
            f"state = 'pending', error_class = %s, last_error = %s, next_attempt = %s{counted}",
            (error_class, printable(reason), next_attempt),
            lambda c, j: jobs.retry(self._db, c, j, next_attempt),
            f"{error_class}: {reason}",
        )

    def forget(self, entry_id: int) -> None:
        claim = self._claims.pop(entry_id, None)
        guard = (" AND claim = %s", (claim[0],)) if claim else (" AND state = 'pending'", ())

        def change(conn: Connection) -> None:
            rows = self._q(
                conn, f"DELETE FROM hotmatte_files WHERE id = %s{guard[0]} RETURNING *", (entry_id, *guard[1])
            )
            for row in rows:
                jobs.finish(self._db, conn, row["job_id"], "succeeded")
                self._event(conn, "forgotten", row)

        self._db.transact(change)

    def reset_running(self) -> list[Entry]:
        """This node's rows left running by its crash go back to pending (the others' are swept)."""

        def change(conn: Connection) -> list[Row]:
            rows = self._q(
                conn,
                "UPDATE hotmatte_files SET state = 'pending', crashes = crashes + 1, claim = claim + 1,"
                " claimed_by = NULL, updated_at = %s WHERE state = 'running' AND claimed_by = %s RETURNING *",
                (time.time(), self.node),
            )
            for row in rows:
                jobs.retry(self._db, conn, row["job_id"])
                self._event(conn, "crashed", row, row["claim"])
            return rows

        return [entry_of(r) for r in self._db.transact(change)]

    def excuse(self, entry_ids: Collection[int]) -> None:
        """Cut short by a stop: given back to the cluster now, uncounted, rather than at our next start."""
        for entry_id in list(entry_ids):
            self._settle(
                entry_id, "stopped", "state = 'pending'", (), lambda c, j: jobs.retry(self._db, c, j)
            )

    # --- upkeep ---------------------------------------------------------------------------------

    def prune(self, entries: Collection[Entry]) -> int:
        """Delete these rows unless changed since read, with their history (events, finished job)."""

        def change(conn: Connection) -> int:
            deleted = 0
            for e in entries:
                rows = self._q(
                    conn,
                    "DELETE FROM hotmatte_files WHERE id = %s AND updated_at = %s"
                    " AND state IN ('done', 'failed') RETURNING id, job_id",
                    (e.id, e.updated_at),
                )
                for row in rows:
                    self._q(conn, "DELETE FROM hotmatte_events WHERE file_id = %s", (row["id"],))
                    self._q(
                        conn,
                        "DELETE FROM procrastinate_jobs WHERE id = %s AND status NOT IN ('todo', 'doing')",
                        (row["job_id"],),
                    )
                deleted += len(rows)
            return deleted

        return self._db.transact(change)

    def vacuum(self) -> None:
        """Delete finished jobs and events no file row refers to any more (older versions, forgotten).

        PostgreSQL's autovacuum gives the space back; nothing else to do per node.
        """

        def change(conn: Connection) -> None:
            self._q(
                conn,
                "DELETE FROM procrastinate_jobs j WHERE j.task_name = %s"
                " AND j.status NOT IN ('todo', 'doing')"
                " AND NOT EXISTS (SELECT 1 FROM hotmatte_files f WHERE f.job_id = j.id)",
                (jobs.TASK,),
            )
            self._q(
                conn,
                "DELETE FROM hotmatte_events e"
                " WHERE NOT EXISTS (SELECT 1 FROM hotmatte_files f WHERE f.id = e.file_id)",
            )

        self._db.transact(change)

    # --- this node's heartbeat, and the sweep of the others' stalled jobs ------------------------

    def _register(self, conn: Connection) -> int:
        worker_id = jobs.register_worker(self._db, conn)
        self._q(
            conn,
            "INSERT INTO hotmatte_nodes (node, worker_id, host, pid) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (node) DO UPDATE SET worker_id = EXCLUDED.worker_id, host = EXCLUDED.host,"
            " pid = EXCLUDED.pid, started_at = now(), last_seen = now()",
            (self.node, worker_id, socket.gethostname(), os.getpid()),
        )
        return worker_id

    def _unregister(self, conn: Connection) -> None:
        self._q(conn, "SELECT procrastinate_unregister_worker_v1(%s)", (self.worker_id,))

    def _reconciled(self, conn: Connection) -> None:
        """After a reconnection: a claim whose commit we never heard of is given back at once."""
        ours = list(self._claims) or [0]
        rows = self._q(
            conn,
            "UPDATE hotmatte_files SET state = 'pending', claim = claim + 1, claimed_by = NULL"
            " WHERE state = 'running' AND claimed_by = %s AND NOT (id = ANY(%s)) RETURNING job_id",
            (self.node, ours),
        )
        for row in rows:
            jobs.retry(self._db, conn, row["job_id"])
