"""The read side of the cluster journal: lookups and reports, each one short transaction.

Split from :mod:`daemon.journal.cluster` (the writes, the claims and the heartbeats) to keep
each module to one concern; the SQL mirrors :mod:`daemon.journal.store`'s, on bytes paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import PurePosixPath
from typing import Any, Literal, cast

from daemon.config import Cluster
from daemon.journal.cluster_db import Connection, Database, Row
from daemon.journal.store import (
    STATES,
    Decision,
    DecisionRecord,
    Entry,
    Fingerprint,
    State,
    browse_conditions,
    entry_from_row,
)


def entry_of(row: Row) -> Entry:
    return entry_from_row(row, os.fsdecode(bytes(row["path"])), row.get("profile"))


def escaped_like_path(text: str) -> str:
    """``text`` as PostgreSQL's ``encode(path, 'escape')`` writes a path holding it, lower-cased.

    Why: paths are BYTEA (names need not be UTF-8), and ``convert_from`` fails on a name that is
    not; the escape form is text for every name (bytes above 0x7f as ``\\ooo``, a backslash
    doubled), so a search is a substring test on it. Case is folded for ASCII only, as SQLite's
    LIKE does on the SQLite journal.
    """
    out = []
    for byte in os.fsencode(text):
        if byte == 0x5C:
            out.append("\\\\")
        elif byte >= 0x80 or byte == 0:
            out.append(f"\\{byte:03o}")
        else:
            out.append(chr(byte))
    return "".join(out).lower()


class ClusterReads:
    """Lookups and reports on ``hotmatte_files``, ``hotmatte_events`` and ``hotmatte_nodes``."""

    settings: Cluster
    _db: Database

    def _q(self, conn: Connection, sql: str, params: Any = None) -> list[Row]:
        cursor = self._db.execute(conn, sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def _read(self, sql: str, params: Any = None) -> list[Row]:
        return self._db.transact(lambda c: self._q(c, sql, params))

    def get(self, folder: str, path: str) -> Entry | None:
        rows = self._read(
            "SELECT * FROM hotmatte_files WHERE folder = %s AND path = %s", (folder, os.fsencode(path))
        )
        return entry_of(rows[0]) if rows else None

    def get_by_id(self, entry_id: int) -> Entry | None:
        rows = self._read("SELECT * FROM hotmatte_files WHERE id = %s", (entry_id,))
        return entry_of(rows[0]) if rows else None

    def is_settled(
        self, folder: str, path: str, fingerprint: Fingerprint, *, redo_done: bool = False
    ) -> bool:
        entry = self.get(folder, path)
        return (
            entry is not None
            and entry.fingerprint == fingerprint
            and not (redo_done and entry.state == "done")
        )

    def same_output_rivals(self, entry: Entry, output_of: Callable[[str], str]) -> list[Entry]:
        """As :meth:`daemon.journal.store.Journal.same_output_rivals`, on bytes paths."""
        mine = os.fsencode(output_of(entry.path))
        parent = PurePosixPath(entry.path).parent.as_posix()
        prefix = b"" if parent == "." else os.fsencode(parent + "/")
        bounds = " AND path >= %s AND path < %s" if prefix else ""
        rows = self._read(
            "SELECT * FROM (SELECT *, substring(path from %s) AS name FROM hotmatte_files"
            f"  WHERE folder = %s AND id < %s AND state <> 'failed'{bounds}) s"
            " WHERE position('\\x2f'::bytea in name) = 0"
            " AND position(substring(name from 1 for position('\\x2e'::bytea in name || '\\x2e'::bytea) - 1)"
            " in %s) > 0 ORDER BY id",
            (
                len(prefix) + 1,
                entry.folder,
                entry.id,
                *((prefix, prefix[:-1] + b"0") if prefix else ()),
                mine,
            ),
        )
        return [e for e in map(entry_of, rows) if os.fsencode(output_of(e.path)) == mine]

    def finished_before(self, cutoff: float, after_id: int = 0, limit: int = 500) -> list[Entry]:
        rows = self._read(
            "SELECT * FROM hotmatte_files WHERE id > %s AND state IN ('done', 'failed') AND updated_at < %s"
            " ORDER BY id LIMIT %s",
            (after_id, cutoff, limit),
        )
        return [entry_of(r) for r in rows]

    # --- reports --------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[State, int]]:
        result: dict[str, dict[State, int]] = {}
        for row in self._read(
            "SELECT folder, state, count(*) AS n FROM hotmatte_files GROUP BY folder, state"
        ):
            result.setdefault(row["folder"], dict.fromkeys(STATES, 0))[cast(State, row["state"])] = row["n"]
        return result

    def backlog(self, folders: Collection[str] | None = None) -> int:
        rows = self._read(
            "SELECT folder, count(*) AS n FROM hotmatte_files WHERE state IN ('pending', 'running')"
            " GROUP BY folder"
        )
        return sum(r["n"] for r in rows if folders is None or r["folder"] in folders)

    def in_review(self) -> dict[str, int]:
        rows = self._read(
            "SELECT folder, count(*) AS n FROM hotmatte_files WHERE state = 'done' AND review = 1"
            " GROUP BY folder"
        )
        return {r["folder"]: r["n"] for r in rows}

    def waiting_for_space(self) -> dict[str, tuple[int, str]]:
        rows = self._read(
            "SELECT folder, count(*) AS n, max(last_error) AS reason FROM hotmatte_files"
            " WHERE state = 'pending' AND error_class = 'DiskFull' GROUP BY folder"
        )
        return {r["folder"]: (r["n"], r["reason"] or "") for r in rows}

    def recent_failures(self, limit: int = 10) -> list[Entry]:
        rows = self._read(
            "SELECT * FROM hotmatte_files WHERE state = 'failed' ORDER BY updated_at DESC, id DESC LIMIT %s",
            (limit,),
        )
        return [entry_of(r) for r in rows]

    def done_since(self, cutoff: float) -> dict[str, int]:
        """``{folder: n}`` of files that ended done since ``cutoff`` (the console's files per minute)."""
        rows = self._read(
            "SELECT folder, count(*) AS n FROM hotmatte_files WHERE state = 'done' AND updated_at >= %s"
            " GROUP BY folder",
            (cutoff,),
        )
        return {r["folder"]: r["n"] for r in rows}

    def failed(self, folder: str | None = None, limit: int = 100, offset: int = 0) -> list[Entry]:
        """Failed rows, newest first, of one folder or all (a page of ``limit`` from ``offset``)."""
        where, params = ("AND folder = %s", (folder,)) if folder is not None else ("", ())
        rows = self._read(
            f"SELECT * FROM hotmatte_files WHERE state = 'failed' {where}"
            " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
            (*params, limit, offset),
        )
        return [entry_of(r) for r in rows]

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
        """As :meth:`daemon.journal.store.Journal.browse`; the search also finds names that are not
        UTF-8 (see :func:`escaped_like_path`). The count and the page are one snapshot."""
        conditions, params = browse_conditions(folder, state, "%s")
        where = ["TRUE", *conditions]
        if search:
            where.append("strpos(lower(encode(path, 'escape')), %s) > 0")
            params.append(escaped_like_path(search))
        clause = " AND ".join(where)

        def read(conn: Connection) -> tuple[list[Row], int]:
            total = self._q(conn, f"SELECT count(*) AS n FROM hotmatte_files WHERE {clause}", params)
            rows = self._q(
                conn,
                f"SELECT * FROM hotmatte_files WHERE {clause}"
                " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s",
                (*params, limit, offset),
            )
            return rows, int(total[0]["n"])

        rows, total = self._db.transact(read)
        return [entry_of(r) for r in rows], total

    def decisions(self, entry_id: int | None = None, limit: int = 100) -> list[DecisionRecord]:
        """The latest decisions (of one row when ``entry_id`` is given), newest first."""
        where, params = ("WHERE file_id = %s", (entry_id,)) if entry_id is not None else ("", ())
        rows = self._read(
            f"SELECT * FROM hotmatte_decisions {where} ORDER BY decided_at DESC, id DESC LIMIT %s",
            (*params, limit),
        )
        return [
            DecisionRecord(
                r["file_id"],
                r["folder"],
                os.fsdecode(bytes(r["path"])),
                cast(Decision, r["decision"]),
                r["profile"],
                r["output"],
                r["decided_at"],
            )
            for r in rows
        ]

    def nodes(self) -> list[Row]:
        """Per node: last heartbeat age, alive (heard from within ``stalled_after_seconds``), files
        running now, files done and files taken back from it (from the events)."""
        rows = self._read(
            "SELECT n.node, n.host, n.pid, extract(epoch FROM now() - n.last_seen)::float AS silent_seconds,"
            " (SELECT count(*) FROM hotmatte_files f WHERE f.state = 'running' AND f.claimed_by = n.node)"
            " AS running,"
            " (SELECT count(*) FROM hotmatte_events e WHERE e.node = n.node AND e.kind = 'done') AS done,"
            " (SELECT count(*) FROM hotmatte_events e WHERE e.node = n.node AND e.kind = 'stalled')"
            " AS taken_back"
            " FROM hotmatte_nodes n ORDER BY n.node"
        )
        stalled = self.settings.stalled_after_seconds
        return [{**n, "alive": n["silent_seconds"] < stalled} for n in rows]
