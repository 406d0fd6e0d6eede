"""What goes wrong with the journal itself, and what the daemon does about it.

* **Damaged** (a corrupt page: ``database disk image is malformed``, or not a
  database at all): :class:`~daemon.errors.JournalUnusable`, found by
  ``PRAGMA quick_check`` at start (one pass over the pages, a second or so for a
  large journal) or by any later statement. The daemon stops with exit 2 and
  one line naming the repair. It does **not** move the journal aside and start
  afresh by itself: an empty journal means processing every file in every hot
  folder again (the start-up scan offers them all, and outputs that exist do
  not stop a new row), including every file that had failed, which can be hours
  of GPU time and a flood of duplicate error records. SQLite's ``.recover``
  usually keeps all rows but a few, so the operator chooses: recover, or move
  it aside knowingly.
* **Read-only** (file mode, owner, a read-only mount): ``JournalUnusable`` at
  open (the journal's first write happens there), exit 2, one line.
* **Full disk**: not the journal's fault and not a reason to stop. A write that
  fails with ``SQLITE_FULL`` is rolled back and retried, waiting
  :attr:`DiskFullWait.pause` between tries, until space returns; the caller's
  hook says so once (log, ``STATUS=``) and keeps the watchdog fed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from daemon.errors import JournalUnusable

#: Longest wait between two tries of a journal write on a full disk.
MAX_PAUSE_SECONDS = 5.0
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_READ_ONLY = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH)


def _primary_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) == sqlite3.SQLITE_FULL


def repair_hint(path: Path) -> str:
    return (
        f"stop hotmatte and repair it: sqlite3 {path} '.recover' | sqlite3 {path}.recovered, then"
        f" mv {path}.recovered {path} (or move {path} aside to start afresh: every file in the hot"
        " folders is then processed again)"
    )


def damaged(path: Path, detail: str) -> JournalUnusable:
    detail = " ".join(detail.replace("*** in database main ***", "").split())  # one line
    return JournalUnusable(f"the journal {path} is damaged ({detail}); {repair_hint(path)}")


def unwritable(path: Path, detail: str) -> JournalUnusable:
    return JournalUnusable(
        f"the journal {path} cannot be written ({detail}); give the service user write access to"
        f" {path} and its folder {path.parent}"
    )


@contextmanager
def translate(path: Path) -> Iterator[None]:
    """Raise :class:`JournalUnusable` for a damaged or unwritable journal; let the rest through."""
    try:
        yield
    except sqlite3.Error as exc:
        code = _primary_code(exc)
        if code in _DAMAGED:
            raise damaged(path, str(exc)) from exc
        if code in _READ_ONLY:
            raise unwritable(path, str(exc)) from exc
        raise
    except PermissionError as exc:
        raise unwritable(path, exc.strerror or str(exc)) from exc


def check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` (every page's structure, not index contents); raise if damaged."""
    rows = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    if rows != ["ok"]:
        raise damaged(path, "; ".join(str(r) for r in rows))


@dataclass(frozen=True)
class DiskFullWait:
    """One episode of journal writes waiting for space: what failed, how long so far."""

    path: Path
    error: str
    tries: int = 1
    waited: float = 0.0
    over: bool = False

    @property
    def pause(self) -> float:
        return min(MAX_PAUSE_SECONDS, 0.25 * 2 ** (self.tries - 1))

    def next(self) -> DiskFullWait:
        return replace(self, tries=self.tries + 1, waited=self.waited + self.pause)

    def resolved(self) -> DiskFullWait:
        return replace(self, over=True)
