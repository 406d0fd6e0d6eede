"""The work queue of cluster mode: Procrastinate's jobs, workers and heartbeats, in our transactions.

Procrastinate (MIT) carries the work: its schema (``procrastinate_jobs``, ``procrastinate_workers``)
and its versioned SQL functions (``procrastinate_defer_jobs_v1``, ``procrastinate_fetch_job_v2``,
``procrastinate_retry_job_v2``, ``procrastinate_finish_job_v1``, ``procrastinate_register_worker_v1``,
``procrastinate_update_heartbeat_v1``, ``procrastinate_prune_stalled_workers_v1``), taken from
``procrastinate.sql.queries`` where the query is usable as is. What it gives us:

- **queued once**: an arrival defers a job whose ``queueing_lock`` is folder + relative path +
  fingerprint; Procrastinate's unique index on waiting jobs refuses a second one, so three
  watchers that see the same NAS file queue it once;
- **one version at a time**: the job's ``lock`` is folder + relative path, so a newer version
  of a file never runs on one node while the older one still runs on another;
- **pull, no prefetch**: a node fetches one job when its pipeline has room, so a GPU node takes
  more than a CPU node;
- **heartbeats and stalled jobs**: each node is a Procrastinate worker that heartbeats; every
  node sweeps the jobs of workers silent for ``stalled_after_seconds`` back to ``todo``
  (Procrastinate's documented stalled-job retry, ``select_stalled_jobs_by_heartbeat``).

Why not Procrastinate's own ``Worker`` and ``JobManager`` objects: they are asyncio and run each
job in their own coroutine, while the daemon's loop and pipeline are threads fed by the journal.
Calling the same SQL functions on the journal's connection instead puts each job transition
and its journal transition in *one* transaction (a file cannot be ``done`` while its job is
still ``doing``, or queued without a row), which the two-connection alternative could not.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import psycopg
from procrastinate import sql as procrastinate_sql
from procrastinate.schema import SchemaManager

from daemon.journal.cluster_db import Connection, Database, Row

TASK = "hotmatte.cutout"
QUEUE_PREFIX = "hotmatte/"
#: One advisory lock key for schema set-up, so three nodes starting together create it once.
_SCHEMA_LOCK = 0x686F746D  # "hotm"

SCHEMA = """
CREATE TABLE IF NOT EXISTS hotmatte_files (
    id BIGSERIAL PRIMARY KEY,
    folder TEXT NOT NULL,
    path BYTEA NOT NULL,              -- the relative path's bytes (names need not be UTF-8)
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    profile_hash TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_class TEXT,
    next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
    started_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    output TEXT,
    confidence DOUBLE PRECISION,
    review INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    claim BIGINT NOT NULL DEFAULT 0,  -- fencing token: raised by every claim and every take-back
    claimed_by TEXT,                  -- the node running it
    job_id BIGINT,                    -- its procrastinate_jobs row
    profile TEXT,                     -- the operator's Re-run profile (Review page); NULL: the folder's
    UNIQUE (folder, path)
);
CREATE INDEX IF NOT EXISTS hotmatte_files_state ON hotmatte_files (state, folder);
CREATE INDEX IF NOT EXISTS hotmatte_files_job ON hotmatte_files (job_id);
CREATE TABLE IF NOT EXISTS hotmatte_events (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    file_id BIGINT,
    folder TEXT,
    path BYTEA,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,               -- queued claimed done failed retry stalled stale migrated ...
    claim BIGINT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS hotmatte_events_file ON hotmatte_events (file_id);
CREATE TABLE IF NOT EXISTS hotmatte_nodes (
    node TEXT PRIMARY KEY,
    worker_id BIGINT,
    host TEXT,
    pid INTEGER,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    running INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS hotmatte_decisions (
    id BIGSERIAL PRIMARY KEY,
    file_id BIGINT NOT NULL,
    folder TEXT NOT NULL,
    path BYTEA NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'rerun')),
    profile TEXT,
    output TEXT,
    decided_at DOUBLE PRECISION NOT NULL,
    node TEXT                         -- who decided (the console's node)
);
CREATE INDEX IF NOT EXISTS hotmatte_decisions_file ON hotmatte_decisions (file_id);
"""
#: Columns added to ``hotmatte_files`` after the first cluster release: (name, definition).
ADDED_COLUMNS = (("profile", "TEXT"),)


def install_schema(db: Database, conn: Connection) -> None:
    """Create Procrastinate's schema and ours if absent (under an advisory lock: nodes start together)."""
    db.execute(conn, "SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
    present = db.execute(conn, "SELECT to_regclass('procrastinate_jobs') AS t").fetchone()
    if present is None or present["t"] is None:
        conn.execute(SchemaManager.get_schema())  # Procrastinate's own schema file, as its CLI applies it
    conn.execute(SCHEMA)
    # A database made by an older release: add the columns it lacks. Asked first rather than
    # ALTER ... IF NOT EXISTS every time, which would take the table's exclusive lock at each open.
    columns = {
        r["column_name"]
        for r in db.execute(
            conn,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'hotmatte_files'",
        ).fetchall()
    }
    for name, definition in ADDED_COLUMNS:
        if name not in columns:
            db.execute(conn, f"ALTER TABLE hotmatte_files ADD COLUMN {name} {definition}")


def queue_of(folder: str) -> str:
    return QUEUE_PREFIX + folder


def _digest(*parts: object) -> str:
    text = b"\x1f".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
    return hashlib.sha256(text).hexdigest()[:32]


def locks_for(folder: str, path: str, fingerprint: tuple[object, ...]) -> tuple[str, str]:
    """(lock, queueing_lock): one version at a time per file; one waiting job per version."""
    raw = os.fsencode(path)
    return f"{folder}:{_digest(raw)}", f"{folder}:{_digest(raw, *fingerprint)}"


def defer(
    db: Database, conn: Connection, folder: str, path: str, file_id: int, fp: tuple[object, ...]
) -> int:
    """Queue the job for ``file_id``; when the same version already waits, return that job instead."""
    lock, queueing_lock = locks_for(folder, path, fp)
    args = json.dumps({"file_id": file_id, "folder": folder, "path": os.fsencode(path).hex()})
    try:
        with conn.transaction():  # a savepoint: the unique violation must not abort the caller's work
            row = db.execute(
                conn,
                "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(%s, %s, 0, %s, %s, %s::jsonb, NULL)"
                "::procrastinate_job_to_defer_v1])) AS id",
                (queue_of(folder), TASK, lock, queueing_lock, args),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        row = db.execute(
            conn,
            "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'",
            (queueing_lock,),
        ).fetchone()
        db.execute(
            conn, "UPDATE procrastinate_jobs SET args = %s::jsonb WHERE id = %s", (args, row and row["id"])
        )
    assert row is not None
    return int(row["id"])


def fetch(db: Database, conn: Connection, folders: list[str], worker_id: int) -> Row | None:
    """Procrastinate's fetch: the first due job of these folders' queues, now ``doing`` for us."""
    row = db.execute(
        conn,
        procrastinate_sql.queries["fetch_job"],
        {"queues": [queue_of(f) for f in folders], "worker_id": worker_id},
    ).fetchone()
    return row if row is not None and row["id"] is not None else None


def has_due(db: Database, conn: Connection, folders: list[str]) -> bool:
    row = db.execute(
        conn,
        "SELECT 1 AS due FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = ANY(%s)"
        " AND (scheduled_at IS NULL OR scheduled_at <= now()) LIMIT 1",
        ([queue_of(f) for f in folders],),
    ).fetchone()
    return row is not None


def _locked_while_doing(db: Database, conn: Connection, job_id: int) -> bool:
    """Lock the job's row and say whether it is still ``doing`` (only then may it finish or retry)."""
    doing = db.execute(
        conn, "SELECT id FROM procrastinate_jobs WHERE id = %s AND status = 'doing' FOR UPDATE", (job_id,)
    ).fetchone()
    return doing is not None


def finish(db: Database, conn: Connection, job_id: int | None, status: str) -> None:
    """``doing`` → ``succeeded``/``failed``; a job no longer ``doing`` is left as it is."""
    if job_id is None:
        return
    if _locked_while_doing(db, conn, job_id):
        db.execute(
            conn,
            procrastinate_sql.queries["finish_job"],
            {"job_id": job_id, "status": status, "delete_job": False},
        )
    else:
        cancel(db, conn, job_id)


def cancel(db: Database, conn: Connection, job_id: int | None) -> None:
    """A waiting job that is no longer wanted (its file changed, vanished or was settled)."""
    if job_id is not None:
        db.execute(
            conn,
            procrastinate_sql.queries["cancel_job"],
            {"job_id": job_id, "abort": False, "delete_job": False},
        )


def retry(db: Database, conn: Connection, job_id: int | None, at: float | None = None) -> None:
    """``doing`` → ``todo``, due at ``at`` (epoch seconds; now when None)."""
    if job_id is None:
        return
    when = datetime.datetime.fromtimestamp(at, datetime.UTC) if at else datetime.datetime.now(datetime.UTC)
    if _locked_while_doing(db, conn, job_id):
        db.execute(
            conn,
            procrastinate_sql.queries["retry_job"],
            {
                "job_id": job_id,
                "retry_at": when,
                "new_priority": None,
                "new_queue_name": None,
                "new_lock": None,
            },
        )
    else:  # already waiting (or settled): just move its due time
        db.execute(
            conn,
            "UPDATE procrastinate_jobs SET scheduled_at = %s WHERE id = %s AND status = 'todo'",
            (when, job_id),
        )


def register_worker(db: Database, conn: Connection) -> int:
    row = db.execute(conn, procrastinate_sql.queries["register_worker"]).fetchone()
    assert row is not None
    return int(row["worker_id"])


def heartbeat(db: Database, conn: Connection, worker_id: int) -> bool:
    """Procrastinate's heartbeat; False when our worker row is gone (others thought us dead)."""
    db.execute(conn, procrastinate_sql.queries["update_heartbeat"], {"worker_id": worker_id})
    row = db.execute(
        conn, "SELECT 1 AS alive FROM procrastinate_workers WHERE id = %s", (worker_id,)
    ).fetchone()
    return row is not None


def stalled_jobs(db: Database, conn: Connection, seconds: float) -> list[Row]:
    """Procrastinate's stalled-job query: ``doing`` jobs of workers silent for ``seconds``."""
    db.execute(conn, procrastinate_sql.queries["prune_stalled_workers"], {"seconds_since_heartbeat": seconds})
    return list(
        db.execute(
            conn,
            procrastinate_sql.queries["select_stalled_jobs_by_heartbeat"],
            {"queue": None, "task_name": TASK, "seconds_since_heartbeat": seconds},
        ).fetchall()
    )


def still_stalled(db: Database, conn: Connection, job_id: int, seconds: float) -> bool:
    """Lock the job and check again (another node may have taken it back and re-run it meanwhile)."""
    row = db.execute(
        conn,
        "SELECT j.id FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w ON w.id = j.worker_id"
        " WHERE j.id = %s AND j.status = 'doing'"
        " AND (j.worker_id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s))"
        " FOR UPDATE OF j",
        (job_id, seconds),
    ).fetchone()
    return row is not None
