"""``hotmatte journal migrate``: copy a node's SQLite journal into the cluster database.

A studio that ran one node for months keeps its history: done and failed files are not
processed again when the node joins a cluster. Rows already in the cluster (same folder and
relative path) are left as they are, so running it twice, or from two nodes that watched
the same folders, copies each file once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from daemon.journal.cluster import ClusterJournal


@dataclass(frozen=True)
class Copied:
    copied: int
    already_there: int
    queued: int


def migrate(sqlite_path: Path, cluster: ClusterJournal) -> Copied:
    """Copy every row of the SQLite journal at ``sqlite_path`` (opened read-only) into ``cluster``."""
    source = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    source.row_factory = sqlite3.Row
    copied = skipped = queued = 0
    try:
        for row in source.execute("SELECT * FROM files ORDER BY id"):
            if cluster.import_row(dict(row)):
                copied += 1
                queued += row["state"] not in ("done", "failed")
            else:
                skipped += 1
    finally:
        source.close()
    return Copied(copied, skipped, queued)
