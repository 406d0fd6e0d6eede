"""The durable record of every file the daemon has seen: SQLite in WAL mode, on local disk.

One row per (folder, relative path). A row's fingerprint (size, mtime_ns,
profile hash, pipeline version) says *which version* of the file the state
refers to, so a file that changes is processed again and one that has not is
never processed twice::

    pending ──claim──▶ running ──▶ done
       ▲                  │   └──▶ failed      (permanent error, or retries used up)
       └──── retry_later ─┘                    (transient error, with backoff)

A crash leaves rows ``running``; :meth:`Journal.reset_running` puts them back
to ``pending`` at start and counts the crash on the row (``crashes``), so the
service can quarantine a file that was running at two crashes in a row instead
of retrying it forever; any real outcome sets ``crashes`` back to 0.
``attempts`` counts failed tries (transient errors that were retried, and the
final failure), never claims, so restarts do not use up a file's retries.

A done row whose result went to review_dir (``review = 1``) waits for the operator's decision on
the console's Review page; :meth:`Journal.decide` applies it (approve: stays done; reject: failed,
``RejectedByOperator``; rerun: pending with the chosen ``profile``) and records it in ``decisions``.

WAL with ``synchronous=NORMAL`` survives a killed process; a power cut may lose
the last few transitions, which only means redoing a file (outputs are replaced
atomically), never losing one.

Faults of the journal itself (see :mod:`daemon.journal.faults`): a damaged or
read-only journal is :class:`~daemon.errors.JournalUnusable`, found by a
``quick_check`` at open or by any later statement; a full disk makes writes
wait and retry the same transition until space returns (``on_disk_full``), so
no transition is ever lost and the daemon never crashes for it. Names that are
not UTF-8 are stored as BLOBs (:mod:`daemon.journal.names`); reasons and output paths,
which are only shown, are stored with such bytes escaped (``backslashreplace``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar, cast

from daemon.errors import JournalUnusable, RejectedByOperator
from daemon.journal.faults import DiskFullWait, check_integrity, is_disk_full, translate
from daemon.journal.names import from_column, printable, to_column

T = TypeVar("T")

State = Literal["pending", "running", "done", "failed"]
STATES: tuple[State, ...] = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    folder TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    profile_hash TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    error_class TEXT,
    next_attempt REAL NOT NULL DEFAULT 0,
    started_at REAL,
    updated_at REAL NOT NULL,
    output TEXT,
    confidence REAL,
    review INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (folder, path)
);
CREATE INDEX IF NOT EXISTS files_due ON files (state, next_attempt);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    folder TEXT NOT NULL,
    path TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'rerun')),
    profile TEXT,
    output TEXT,
    decided_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_file ON decisions (file_id);
"""
#: Columns added after the first release: (name, definition) for ALTER TABLE on older journals.
_ADDED_COLUMNS = (("crashes", "INTEGER NOT NULL DEFAULT 0"), ("profile", "TEXT"))
#: An operator's verdict on a result in review (the console's Review page).
Decision = Literal["approve", "reject", "rerun"]
#: error_class of a file whose result the operator rejected.
REJECTED = RejectedByOperator.__name__


@dataclass(frozen=True)
class Fingerprint:
    """Which version of a file, processed which way."""

    size: int
    mtime_ns: int
    profile_hash: str
    pipeline_version: str


def profile_hash(*settings: object) -> str:
    """A short stable digest of everything (besides the file) that shapes the output."""
    text = "\x1f".join(repr(s) for s in settings)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Entry:
    """One journal row."""

    id: int
    folder: str
    path: str
    fingerprint: Fingerprint
    state: State
    attempts: int
    last_error: str | None
    error_class: str | None
    next_attempt: float
    started_at: float | None
    updated_at: float
    output: str | None
    #: Crashes in a row while this row was running (see :meth:`Journal.reset_running`).
    crashes: int = 0
    #: The cut's confidence, once done.
    confidence: float | None = None
    #: Done, and its result waits in review_dir for the operator's decision.
    review: bool = False
    #: A profile the operator chose for this file (Re-run on the Review page); None: the folder's.
    profile: str | None = None


@dataclass(frozen=True)
class DecisionRecord:
    """One operator decision on a result in review."""

    file_id: int
    folder: str
    path: str
    decision: Decision
    profile: str | None
    output: str | None
    decided_at: float


def _unchanged(entry: Entry, fingerprint: Fingerprint, redo_done: bool) -> bool:
    """Offering this version again would change nothing (see :meth:`Journal.is_settled`)."""
    return entry.fingerprint == fingerprint and not (redo_done and entry.state == "done")


def browse_conditions(
    folder: str | None, state: State | Literal["review"] | None, placeholder: str
) -> tuple[list[str], list[object]]:
    """The WHERE conditions and parameters of a Files or Review page, the same in both backends.

    ``placeholder`` is the backend's parameter mark (``?`` or ``%s``); each backend adds its own
    path search. "review" is the done rows whose result waits in review_dir.
    """
    conditions: list[str] = []
    params: list[object] = []
    if folder:
        conditions.append(f"folder = {placeholder}")
        params.append(folder)
    if state == "review":
        conditions.append("state = 'done' AND review = 1")
    elif state:
        conditions.append(f"state = {placeholder}")
        params.append(state)
    return conditions, params


def entry_from_row(row: Mapping[str, Any], path: str, profile: str | None) -> Entry:
    """An :class:`Entry` from a ``files`` row of either backend (they share the columns); the
    caller decodes ``path`` (stored differently by each) and says whether ``profile`` exists."""
    return Entry(
        id=row["id"],
        folder=row["folder"],
        path=path,
        fingerprint=Fingerprint(row["size"], row["mtime_ns"], row["profile_hash"], row["pipeline_version"]),
        state=cast(State, row["state"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        error_class=row["error_class"],
        next_attempt=row["next_attempt"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        output=row["output"],
        crashes=row["crashes"],
        confidence=row["confidence"],
        review=bool(row["review"]),
        profile=profile,
    )


def _entry(row: sqlite3.Row) -> Entry:
    # A read-only journal of an older release may lack the profile column.
    profile = row["profile"] if "profile" in row.keys() else None  # noqa: SIM118 (`in row` tests values)
    return entry_from_row(cast("Mapping[str, Any]", row), from_column(row["path"]), profile)


class Journal:
    """Thread-safe access to the journal database (one connection, one lock)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._lock = threading.Lock()
        self.path = path
        #: Called (from the writing thread, without the lock) while a write waits for disk space;
        #: it may raise to give up waiting (the daemon does when asked to stop).
        self.on_disk_full: Callable[[DiskFullWait], None] | None = None
        #: Set once any statement found the journal unusable, from whichever thread met it.
        self.fault: JournalUnusable | None = None

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) the journal for writing; :class:`JournalUnusable` when it cannot be used."""
        with translate(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            db.row_factory = sqlite3.Row
            check_integrity(db, path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
        return cls(db, path)

    @classmethod
    def open_read_only(cls, path: Path) -> Journal:
        """For ``hotmatte status``: never creates or changes the database."""
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        db.row_factory = sqlite3.Row
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Turn a damaged or read-only journal into JournalUnusable, and remember it in ``fault``."""
        try:
            with translate(self.path):
                yield
        except JournalUnusable as exc:
            if self.fault is None:
                self.fault = exc
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``change`` in one transaction; while the disk is full, wait and run it again."""
        wait: DiskFullWait | None = None
        while True:
            try:
                with self._transaction() as db:
                    result = change(db)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                wait = wait.next() if wait is not None else DiskFullWait(self.path, str(exc))
                if self.on_disk_full is not None:
                    self.on_disk_full(wait)
                time.sleep(wait.pause)
                continue
            if wait is not None and self.on_disk_full is not None:
                self.on_disk_full(wait.resolved())
            return result

    def _one(self, sql: str, params: tuple[object, ...]) -> sqlite3.Row | None:
        with self._lock, self._guarded():
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def get(self, folder: str, path: str) -> Entry | None:
        row = self._one("SELECT * FROM files WHERE folder = ? AND path = ?", (folder, to_column(path)))
        return _entry(row) if row else None

    def get_by_id(self, entry_id: int) -> Entry | None:
        row = self._one("SELECT * FROM files WHERE id = ?", (entry_id,))
        return _entry(row) if row else None

    # --- arrivals -------------------------------------------------------------------------------

    def is_settled(
        self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False
    ) -> bool:
        """True when offering this version again would change nothing.

        ``redo_done`` is for folders that move originals away on success: a
        file seen there again after ``done`` is a new drop, not the old one.
        """
        entry = self.get(folder, path)
        return entry is not None and _unchanged(entry, fingerprint, redo_done)

    def offer(self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False) -> bool:
        """Record a complete file; return True if it became (or became again) pending."""
        stored = to_column(path)

        def change(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT * FROM files WHERE folder = ? AND path = ?", (folder, stored)).fetchone()
            if row is not None:
                entry = _entry(row)
                if _unchanged(entry, fingerprint, redo_done):
                    return False
                db.execute("DELETE FROM files WHERE id = ?", (entry.id,))
            db.execute(
                "INSERT INTO files (folder, path, size, mtime_ns, profile_hash, pipeline_version, state,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                (
                    folder,
                    stored,
                    fingerprint.size,
                    fingerprint.mtime_ns,
                    fingerprint.profile_hash,
                    fingerprint.pipeline_version,
                    time.time(),
                ),
            )
            return True

        return self._write(change)

    # --- work -----------------------------------------------------------------------------------

    def reset_running(self) -> list[Entry]:
        """Put rows a crash left ``running`` back to ``pending``, counting the crash on each.

        Returns them as they were, but with ``crashes`` already counting this one.
        """

        def change(db: sqlite3.Connection) -> list[Entry]:
            rows = [_entry(r) for r in db.execute("SELECT * FROM files WHERE state = 'running'")]
            db.execute(
                "UPDATE files SET state = 'pending', crashes = crashes + 1, updated_at = ?"
                " WHERE state = 'running'",
                (time.time(),),
            )
            return [replace(e, crashes=e.crashes + 1) for e in rows]

        return self._write(change)

    def excuse(self, entry_ids: Collection[int]) -> None:
        """These running rows are cut short by a stop (drain timeout), not a crash.

        They stay ``running``, so the next start still checks whether their output was
        published meanwhile, but :meth:`reset_running` will not count a crash for them
        (their count is lowered by one now, and raised back by that reset).
        """
        ids = list(entry_ids)
        if ids:
            marks = ",".join("?" * len(ids))
            self._write(
                lambda db: db.execute(
                    f"UPDATE files SET crashes = crashes - 1 WHERE state = 'running' AND id IN ({marks})", ids
                )
            )

    def claim(self, folders: Collection[str], now: float | None = None) -> Entry | None:
        """Take the oldest due pending row of one of ``folders`` and mark it running."""
        if not folders:
            return None
        now = time.time() if now is None else now
        marks = ",".join("?" * len(folders))

        def change(db: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = db.execute(
                f"SELECT * FROM files WHERE state = 'pending' AND next_attempt <= ? AND folder IN ({marks})"
                " ORDER BY next_attempt, id LIMIT 1",
                (now, *folders),
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE files SET state = 'running', started_at = ?, updated_at = ? WHERE id = ?",
                    (now, now, row["id"]),
                )
            return row

        row = self._write(change)
        if row is None:
            return None
        return replace(_entry(row), state="running", started_at=now, updated_at=now)

    def has_due_work(self, folders: Collection[str], now: float | None = None) -> bool:
        """Some pending row of ``folders`` is due now (a claim would find work)."""
        if not folders:
            return False
        marks = ",".join("?" * len(folders))
        row = self._one(
            "SELECT 1 FROM files WHERE state = 'pending' AND next_attempt <= ?"
            f" AND folder IN ({marks}) LIMIT 1",
            (time.time() if now is None else now, *folders),
        )
        return row is not None

    def _set(self, entry_id: int, sql: str, params: tuple[object, ...]) -> None:
        self._write(
            lambda db: db.execute(
                f"UPDATE files SET {sql}, updated_at = ? WHERE id = ?", (*params, time.time(), entry_id)
            )
        )

    def unclaim(self, entry_id: int) -> None:
        """Undo a claim that was never started (the pipeline was full)."""
        self._set(entry_id, "state = 'pending'", ())

    def mark_done(
        self, entry_id: int, output: str | None, confidence: float | None = None, review: bool = False
    ) -> None:
        """Done; ``review`` when the result went to the folder's review_dir (confidence too low)."""
        self._set(
            entry_id,
            "state = 'done', output = ?, confidence = ?, review = ?, last_error = NULL, error_class = NULL,"
            " crashes = 0",
            (None if output is None else printable(output), confidence, int(review)),
        )

    def mark_failed(self, entry_id: int, error_class: str, reason: str) -> None:
        """Failed for good: the final failed try counts as an attempt."""
        self._set(
            entry_id,
            "state = 'failed', error_class = ?, last_error = ?, attempts = attempts + 1, crashes = 0",
            (error_class, printable(reason)),
        )

    def retry_later(
        self, entry_id: int, error_class: str, reason: str, next_attempt: float, *, count_attempt: bool = True
    ) -> None:
        """Back to pending, due at ``next_attempt``.

        ``count_attempt``: the file itself failed (a transient error), which counts as a try and,
        being a real outcome, clears ``crashes``. ``False``: not the file's fault (share gone,
        disk full, an older version still in progress); nothing is counted or cleared.
        """
        counted = ", attempts = attempts + 1, crashes = 0" if count_attempt else ""
        self._set(
            entry_id,
            f"state = 'pending', error_class = ?, last_error = ?, next_attempt = ?{counted}",
            (error_class, printable(reason), next_attempt),
        )

    def same_output_rivals(self, entry: Entry, output_of: Callable[[str], str]) -> list[Entry]:
        """Older rows of the same folder and directory whose output path (``output_of(path)``,
        from the folder's output_name template) is ``entry``'s: they would write the same file.

        Failed ones no longer count. The template decides, not the stem: under
        ``"{stem}.{ext}"`` ``x.psd`` and ``x.jpg`` do not collide.
        """
        mine = output_of(entry.path)
        parent = PurePosixPath(entry.path).parent.as_posix()
        # Only the same directory (a template never moves a file to another one): for a
        # sub-folder, a range on the (folder, path) index; "/" + 1 is "0".
        prefix = "" if parent == "." else parent + "/"
        # A name that is not UTF-8 is a BLOB (daemon.journal.names): its rivals are BLOBs too (the same
        # odd bytes are in their stem), compared byte by byte, so the bounds and offsets are bytes.
        as_bytes = isinstance(to_column(entry.path), bytes)
        low: str | bytes = os.fsencode(prefix) if as_bytes else prefix
        high: str | bytes = os.fsencode(prefix[:-1] + "0") if as_bytes else prefix[:-1] + "0"
        in_directory = "AND path >= ? AND path < ?" if prefix else ""
        bounds = (low, high) if prefix else ()
        # Every template holds {stem}, so a rival's name up to its first dot (part of its stem) is
        # part of our output path. Testing that in SQL keeps a 10,000-file folder (6 ms a claim)
        # from going through Python on every claim; output_of then decides on the rows left.
        with self._lock, self._guarded():
            candidates = self._db.execute(
                "SELECT id, path FROM (SELECT id, path, substr(path, ?) AS name FROM files"
                f"  WHERE folder = ? AND id < ? AND state != 'failed' {in_directory})"
                " WHERE instr(name, '/') = 0 AND instr(?, substr(name, 1, instr(name || '.', '.') - 1)) > 0"
                " ORDER BY id",
                (len(low) + 1, entry.folder, entry.id, *bounds, to_column(mine)),
            ).fetchall()
        ids = [row["id"] for row in candidates if output_of(from_column(row["path"])) == mine]
        return [e for e in map(self.get_by_id, ids) if e is not None]

    def forget(self, entry_id: int) -> None:
        """Drop a row whose file vanished before it was processed."""
        self._write(lambda db: db.execute("DELETE FROM files WHERE id = ?", (entry_id,)))

    # --- upkeep -------------------------------------------------------------------------------

    def finished_before(self, cutoff: float, after_id: int = 0, limit: int = 500) -> list[Entry]:
        """Done and failed rows last changed before ``cutoff``, by id from ``after_id`` (in pages)."""
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT * FROM files WHERE id > ? AND state IN ('done', 'failed') AND updated_at < ?"
                " ORDER BY id LIMIT ?",
                (after_id, cutoff, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def prune(self, entries: Collection[Entry]) -> int:
        """Delete these rows, unless they changed since they were read (a file offered again)."""
        with self._transaction() as db:
            deleted = 0
            for entry in entries:
                deleted += db.execute(
                    "DELETE FROM files WHERE id = ? AND updated_at = ? AND state IN ('done', 'failed')",
                    (entry.id, entry.updated_at),
                ).rowcount
        return deleted

    def vacuum(self) -> None:
        """Give the space of deleted rows back to the filesystem (rewrites the file: not per file)."""
        with self._lock, self._guarded():
            self._db.execute("VACUUM")

    # --- reports --------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[State, int]]:
        """``{folder: {state: n}}`` with every state present (zero when none)."""
        with self._lock, self._guarded():
            rows = self._db.execute("SELECT folder, state, count(*) AS n FROM files GROUP BY folder, state")
            result: dict[str, dict[State, int]] = {}
            for row in rows:
                per = result.setdefault(row["folder"], dict.fromkeys(STATES, 0))
                per[cast(State, row["state"])] = row["n"]
        return result

    def backlog(self, folders: Collection[str] | None = None) -> int:
        """Rows still to do (pending or running)."""
        with self._lock, self._guarded():
            if folders is None:  # answered from the files_due index, no grouping
                total = self._db.execute(
                    "SELECT count(*) FROM files WHERE state IN ('pending', 'running')"
                ).fetchone()[0]
                return int(total)
            rows = self._db.execute(
                "SELECT folder, count(*) AS n FROM files WHERE state IN ('pending', 'running')"
                " GROUP BY folder"
            ).fetchall()
        return sum(r["n"] for r in rows if r["folder"] in folders)

    def in_review(self) -> dict[str, int]:
        """``{folder: n}`` of done files whose result went to review_dir."""
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT folder, count(*) AS n FROM files WHERE state = 'done' AND review = 1 GROUP BY folder"
            ).fetchall()
        return {r["folder"]: r["n"] for r in rows}

    def waiting_for_space(self) -> dict[str, tuple[int, str]]:
        """``{folder: (n, latest reason)}`` of pending rows sent back by a full disk."""
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT folder, count(*) AS n, max(last_error) AS reason FROM files"
                " WHERE state = 'pending' AND error_class = 'DiskFull' GROUP BY folder"
            ).fetchall()
        return {r["folder"]: (r["n"], r["reason"] or "") for r in rows}

    def recent_failures(self, limit: int = 10) -> list[Entry]:
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT * FROM files WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_entry(r) for r in rows]

    def done_since(self, cutoff: float) -> dict[str, int]:
        """``{folder: n}`` of files that ended done since ``cutoff`` (the console's files per minute)."""
        with self._lock, self._guarded():
            rows = self._db.execute(
                "SELECT folder, count(*) AS n FROM files WHERE state = 'done' AND updated_at >= ?"
                " GROUP BY folder",
                (cutoff,),
            ).fetchall()
        return {r["folder"]: r["n"] for r in rows}

    def failed(self, folder: str | None = None, limit: int = 100, offset: int = 0) -> list[Entry]:
        """Failed rows, newest first, of one folder or all (a page of ``limit`` from ``offset``)."""
        where, params = ("AND folder = ?", (folder,)) if folder is not None else ("", ())
        with self._lock, self._guarded():
            rows = self._db.execute(
                f"SELECT * FROM files WHERE state = 'failed' {where}"
                " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_entry(r) for r in rows]

    def requeue_failed(self, entry_ids: Collection[int]) -> list[int]:
        """Put these rows back to ``pending``, due now, with a fresh retry budget; only rows still
        ``failed`` (one the daemon re-offered meanwhile is left alone). Returns the ids requeued."""
        ids = list(entry_ids)
        if not ids:
            return []

        def change(db: sqlite3.Connection) -> list[int]:
            done: list[int] = []
            for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                done += [
                    row[0]
                    for row in db.execute(
                        "UPDATE files SET state = 'pending', attempts = 0, crashes = 0, next_attempt = 0,"
                        " error_class = NULL, last_error = NULL, updated_at = ?"
                        f" WHERE state = 'failed' AND id IN ({marks}) RETURNING id",
                        (time.time(), *chunk),
                    ).fetchall()
                ]
            return done

        return self._write(change)

    # --- console: files and review ----------------------------------------------------------------

    def browse(
        self,
        *,
        folder: str | None = None,
        state: State | Literal["review"] | None = None,
        search: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Entry], int]:
        """One page of rows (latest change first) and how many match in all.

        ``state="review"`` is the done rows whose result waits in review_dir. ``search`` matches
        anywhere in the relative path, case-insensitively (names stored as BLOBs are not searched).
        """
        conditions, params = browse_conditions(folder, state, "?")
        where = ["1", *conditions]
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("path LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        clause = " AND ".join(where)
        with self._lock, self._guarded():
            total = self._db.execute(f"SELECT count(*) FROM files WHERE {clause}", params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM files WHERE {clause} ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        return [_entry(r) for r in rows], int(total)

    def decide(
        self, entry_id: int, decision: Decision, *, output: str | None = None, profile: str | None = None
    ) -> bool:
        """Record the operator's ``decision`` on a row in review, and apply it to the row.

        approve: stays done, ``output`` is where the result now is; reject: failed
        (:data:`REJECTED`, "rejected by the operator"); rerun: pending now, with ``profile``.
        False (nothing recorded) when the row is no longer in review: decided already, or offered again.
        """

        def change(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT * FROM files WHERE id = ? AND state = 'done' AND review = 1", (entry_id,)
            ).fetchone()
            if row is None:
                return False
            now = time.time()
            if decision == "approve":
                db.execute(
                    "UPDATE files SET review = 0, output = ?, updated_at = ? WHERE id = ?",
                    (None if output is None else printable(output), now, entry_id),
                )
            elif decision == "reject":
                db.execute(
                    "UPDATE files SET state = 'failed', review = 0, output = NULL, error_class = ?,"
                    " last_error = 'rejected by the operator', updated_at = ? WHERE id = ?",
                    (REJECTED, now, entry_id),
                )
            else:
                db.execute(
                    "UPDATE files SET state = 'pending', review = 0, profile = ?, next_attempt = 0,"
                    " output = NULL, confidence = NULL, updated_at = ? WHERE id = ?",
                    (profile, now, entry_id),
                )
            db.execute(
                "INSERT INTO decisions (file_id, folder, path, decision, profile, output, decided_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry_id, row["folder"], row["path"], decision, profile, output, now),
            )
            return True

        return self._write(change)

    def decisions(self, entry_id: int | None = None, limit: int = 100) -> list[DecisionRecord]:
        """The latest decisions (of one row when ``entry_id`` is given), newest first."""
        where, params = ("WHERE file_id = ?", (entry_id,)) if entry_id is not None else ("", ())
        with self._lock, self._guarded():
            rows = self._db.execute(
                f"SELECT * FROM decisions {where} ORDER BY decided_at DESC, id DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [
            DecisionRecord(
                r["file_id"],
                r["folder"],
                from_column(r["path"]),
                cast(Decision, r["decision"]),
                r["profile"],
                r["output"],
                r["decided_at"],
            )
            for r in rows
        ]


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a journal written by an older release up to the current schema.

    Also the journal's first write at start, so a read-only journal is found here
    (``attempt to write a readonly database``) rather than by the first file.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        present = {row["name"] for row in db.execute("PRAGMA table_info(files)")}
        for name, definition in _ADDED_COLUMNS:
            if name not in present:
                db.execute(f"ALTER TABLE files ADD COLUMN {name} {definition}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        db.execute(f"PRAGMA user_version = {int(version)}")  # a write even when nothing changed
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
