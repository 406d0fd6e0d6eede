"""Journal upkeep: forget finished rows whose source is long gone, and give the space back.

Without it the journal keeps one row for every file a studio ever dropped. A ``done`` or
``failed`` row is forgotten once it is older than ``journal_keep_days`` *and* its source no
longer exists. A row whose source still exists is never forgotten, whatever its age: without it
the file would be processed again.

``failed`` rows are pruned like ``done`` ones: a failed file is retried only when it changes,
which a deleted file never does, and its readable record (the copy and ``.error.json`` in
``error_dir``) stays where the operator looks for it; ``hotmatte status`` still lists it for
``journal_keep_days``. ``pending`` and ``running`` rows are never touched here (the feed loop
forgets a pending row whose file vanished).

When a folder's input cannot be looked at (share gone, permission), or is empty while its
folder keeps originals (what an unmounted share's mount point looks like), nothing of that
folder is pruned this time: "the source is gone" must be a fact, not a share outage. In a folder
with ``on_success: move`` an empty input is normal, and a ``done`` row there never stops a new
drop of the same name from being processed anyway.

Runs on its own thread, at start and then every :data:`PRUNE_EVERY_SECONDS`, so the stat of
every candidate (slow on a share) never holds up the daemon's loop. ``VACUUM`` runs only after
something was pruned, so at most once per run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping

import structlog

from daemon.config import Folder
from daemon.finish.thumbs import remove_thumbs, thumb_key
from daemon.journal.backend import JournalBackend
from daemon.journal.store import Entry

log = structlog.get_logger("hotmatte")

PRUNE_EVERY_SECONDS = 24 * 3600.0
DAY_SECONDS = 24 * 3600.0


def _source_gone(folder: Folder, relative: str) -> bool:
    try:
        os.lstat(folder.input / relative)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell (permission, share hiccup): keep the row
    return False


def _folder_checkable(folder: Folder) -> bool:
    """The input can be listed and is not a suspiciously empty keep-originals folder."""
    try:
        with os.scandir(folder.input) as entries:
            empty = next(entries, None) is None
    except OSError:
        return False
    return folder.on_success == "move" or not empty


def prune_journal(
    journal: JournalBackend,
    folders: Mapping[str, Folder],
    keep_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Forget old finished rows whose source is gone (see the module docstring); return how many."""
    cutoff = (time.time() if now is None else now) - keep_days * DAY_SECONDS
    thumbs = journal.path.parent / "console" / "thumbs"
    checkable = {name: _folder_checkable(folder) for name, folder in folders.items()}
    pruned, after = 0, 0
    while not stopping() and (page := journal.finished_before(cutoff, after_id=after)):
        after = page[-1].id
        gone: list[Entry] = []
        for entry in page:
            folder = folders.get(entry.folder)
            # A folder no longer configured: its input is unknown, so its rows stay (it may come back).
            if folder is not None and checkable[entry.folder] and _source_gone(folder, entry.path):
                gone.append(entry)
        pruned += journal.prune(gone) if gone else 0
        # The console's thumbnails go with their rows (one re-offered meanwhile makes new ones).
        for entry in gone:
            remove_thumbs(thumbs, thumb_key(entry.folder, entry.path))
    return pruned


class JournalUpkeep:
    """The prune (and vacuum) thread of ``hotmatte run``."""

    def __init__(
        self,
        journal: JournalBackend,
        folders: Callable[[], Mapping[str, Folder]],
        keep_days: Callable[[], float],
        every: float = PRUNE_EVERY_SECONDS,
    ) -> None:
        self._journal, self._folders, self._keep_days, self._every = journal, folders, keep_days, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-upkeep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # a bug here must not end upkeep for good, nor go unseen
                log.error("journal_prune_failed", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(self._every)

    def run_once(self) -> None:
        started = time.monotonic()
        keep_days = self._keep_days()
        try:
            pruned = prune_journal(self._journal, self._folders(), keep_days, stopping=self._stop.is_set)
            if pruned and not self._stop.is_set():
                self._journal.vacuum()
        except sqlite3.Error as exc:  # upkeep only: the daemon goes on, and tries again tomorrow
            log.warning("journal_prune_failed", error=str(exc))
            return
        log.info(
            "journal_pruned", count=pruned, keep_days=keep_days, seconds=round(time.monotonic() - started, 3)
        )
