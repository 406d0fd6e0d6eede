"""Cluster journal writes made for tools rather than by a node's loop: ``hotmatte journal migrate``
copying SQLite rows in, the operator's retry (the console, ``hotmatte retry``) and the operator's
Review decisions (the console's Review page).

Split from :mod:`daemon.journal.cluster` (claims, outcomes, heartbeats) to keep each module to
one concern. Neither needs this process to be a Procrastinate worker: a requeued or imported
pending file gets a job that whichever worker node is free fetches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from typing import Any

from daemon.journal import cluster_jobs as jobs
from daemon.journal.cluster_db import Connection, Row
from daemon.journal.cluster_reads import ClusterReads, entry_of
from daemon.journal.names import printable
from daemon.journal.store import REJECTED, Decision, Entry, Fingerprint


def fingerprint_params(f: Fingerprint) -> tuple[object, ...]:
    return (f.size, f.mtime_ns, f.profile_hash, f.pipeline_version)


class ClusterAdmin(ClusterReads):
    """The event log, row import and requeueing on ``hotmatte_files`` (module docstring)."""

    node: str

    def _event(
        self, conn: Connection, kind: str, row: Row | Entry, claim: int | None = None, detail: str = ""
    ) -> None:
        file_id, folder = (row.id, row.folder) if isinstance(row, Entry) else (row["id"], row["folder"])
        path = os.fsencode(row.path) if isinstance(row, Entry) else row["path"]
        self._db.execute(
            conn,
            "INSERT INTO hotmatte_events (file_id, folder, path, node, kind, claim, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (file_id, folder, path, self.node, kind, claim, detail or None),
        )

    def import_row(self, row: dict[str, Any]) -> bool:
        """Copy one SQLite journal row (``hotmatte journal migrate``); False when the file is already here.

        Done and failed rows keep their outcome; pending and running ones are queued again.
        """
        path = row["path"] if isinstance(row["path"], str) else os.fsdecode(row["path"])
        fingerprint = Fingerprint(row["size"], row["mtime_ns"], row["profile_hash"], row["pipeline_version"])
        state = row["state"] if row["state"] in ("done", "failed") else "pending"

        def change(conn: Connection) -> bool:
            columns = (
                "attempts",
                "last_error",
                "error_class",
                "updated_at",
                "output",
                "confidence",
                "review",
                "profile",
            )
            inserted = self._q(
                conn,
                "INSERT INTO hotmatte_files (folder, path, size, mtime_ns, profile_hash, pipeline_version,"
                " state,"
                f" {', '.join(columns)}) VALUES ({', '.join(['%s'] * (7 + len(columns)))})"
                " ON CONFLICT (folder, path) DO NOTHING RETURNING *",
                (
                    row["folder"],
                    os.fsencode(path),
                    *fingerprint_params(fingerprint),
                    state,
                    *(row.get(c) for c in columns),  # profile: absent from an older journal
                ),
            )
            if not inserted:
                return False
            if state == "pending":
                job_id = jobs.defer(
                    self._db, conn, row["folder"], path, inserted[0]["id"], fingerprint_params(fingerprint)
                )
                self._q(
                    conn, "UPDATE hotmatte_files SET job_id = %s WHERE id = %s", (job_id, inserted[0]["id"])
                )
            self._event(conn, "migrated", inserted[0], detail=state)
            return True

        return self._db.transact(change)

    # --- the operator's retry -------------------------------------------------------------------

    def requeue_failed(self, entry_ids: Collection[int]) -> list[int]:
        """Rows still ``failed`` back to ``pending`` with a fresh budget, each with a new job.

        The job is deferred like an arrival's (:func:`daemon.journal.cluster_jobs.defer`: the
        queueing lock is folder + path + fingerprint), in the row's transaction, so exactly one
        node fetches it. The row's claim token is raised too, so an outcome still on its way from
        an earlier claim is fenced. Works without being a worker (console, ``hotmatte retry``).
        """
        ids = list(entry_ids)
        if not ids:
            return []

        def change(conn: Connection) -> list[int]:
            rows = self._q(
                conn,
                "UPDATE hotmatte_files SET state = 'pending', attempts = 0, crashes = 0, next_attempt = 0,"
                " error_class = NULL, last_error = NULL, claim = claim + 1, claimed_by = NULL,"
                " updated_at = %s WHERE state = 'failed' AND id = ANY(%s) RETURNING *",
                (time.time(), ids),
            )
            for row in rows:
                entry = entry_of(row)
                jobs.cancel(self._db, conn, row["job_id"])  # a job of this row still waiting (none, normally)
                job_id = jobs.defer(
                    self._db, conn, entry.folder, entry.path, entry.id, fingerprint_params(entry.fingerprint)
                )
                self._q(conn, "UPDATE hotmatte_files SET job_id = %s WHERE id = %s", (job_id, entry.id))
                self._event(conn, "requeued", row, row["claim"])
            return [int(r["id"]) for r in rows]

        return self._db.transact(change)

    # --- the operator's Review decisions ----------------------------------------------------------

    def decide(
        self, entry_id: int, decision: Decision, *, output: str | None = None, profile: str | None = None
    ) -> bool:
        """As :meth:`daemon.journal.store.Journal.decide` (approve, reject, rerun), recorded in
        ``hotmatte_decisions`` and as a ``decided`` event; False when no longer in review.

        Only a row still ``done`` and in review is changed (one conditional UPDATE: two operators
        deciding at once, the second finds it decided). A rerun goes back to ``pending`` with
        ``profile`` and a new job deferred as :meth:`requeue_failed` does (same queueing lock,
        claim token raised), all in one transaction, so exactly one node runs it again.
        """
        now = time.time()
        shown = None if output is None else printable(output)
        if decision == "approve":
            change_sql, params = "review = 0, output = %s", (shown,)
        elif decision == "reject":
            change_sql = (
                "state = 'failed', review = 0, output = NULL, error_class = %s,"
                " last_error = 'rejected by the operator'"
            )
            params = (REJECTED,)
        else:
            change_sql = (
                "state = 'pending', review = 0, profile = %s, next_attempt = 0, output = NULL,"
                " confidence = NULL, claim = claim + 1, claimed_by = NULL"
            )
            params = (profile,)

        def change(conn: Connection) -> bool:
            rows = self._q(
                conn,
                f"UPDATE hotmatte_files SET {change_sql}, updated_at = %s"
                " WHERE id = %s AND state = 'done' AND review = 1 RETURNING *",
                (*params, now, entry_id),
            )
            if not rows:
                return False
            row = rows[0]
            if decision == "rerun":
                entry = entry_of(row)
                jobs.cancel(self._db, conn, row["job_id"])  # its finished job: nothing, normally
                job_id = jobs.defer(
                    self._db, conn, entry.folder, entry.path, entry.id, fingerprint_params(entry.fingerprint)
                )
                self._q(conn, "UPDATE hotmatte_files SET job_id = %s WHERE id = %s", (job_id, entry.id))
            self._q(
                conn,
                "INSERT INTO hotmatte_decisions (file_id, folder, path, decision, profile, output,"
                " decided_at, node) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (entry_id, row["folder"], row["path"], decision, profile, shown, now, self.node),
            )
            self._event(conn, "decided", row, row["claim"], f"{decision} {profile or ''}".strip())
            return True

        return self._db.transact(change)
