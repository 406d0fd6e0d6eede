"""Checks a claimed journal row passes before its file goes into the pipeline.

The loop claims rows in order (:meth:`~daemon.service.loop.Service._feed_pipeline`); a row is
only a promise made when the file looked complete. :class:`ClaimChecks` answers, for one claimed
row, whether it may still go: no older version of the file is in the pipeline, the file on disk
is still the version that was claimed (else the row is forgotten, or retried when its share is
away), and no older file of the folder owns the same output path (else the row fails with
``OutputCollision``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import structlog

from daemon.config import Config, Folder
from daemon.errors import OutputCollision
from daemon.journal.backend import JournalBackend
from daemon.journal.store import Entry
from daemon.pipeline.stages import Job, Outcome
from daemon.service.folder_files import destination_for, output_key
from daemon.service.outcomes import OutcomeRecorder, Running
from daemon.watch.watcher import FolderWatcher

log = structlog.get_logger("hotmatte")


class ClaimChecks:
    """The service's checks of a claimed row; reads its watchers and running files, never changes them."""

    def __init__(
        self,
        journal: JournalBackend,
        config: Callable[[], Config],
        outcomes: OutcomeRecorder,
        watchers: Mapping[str, FolderWatcher],
        running: Mapping[int, Running],
    ) -> None:
        self._journal = journal
        self._config = config  # a getter: a reload replaces the service's config
        self._outcomes = outcomes
        self._watchers = watchers
        self._running = running

    def refuse_if_output_taken(self, folder: Folder, entry: Entry) -> bool:
        """Fail ``entry`` when an older file of the folder already owns its output path.

        ``a.jpg`` and ``a.png`` both map to ``a.png``: the later one goes to the error folder
        with a reason, rather than silently replacing the other's result.
        """
        config = self._config()
        rivals = self._journal.same_output_rivals(entry, output_key(folder, config))
        if not rivals:
            return False
        destination = destination_for(folder, entry.path, config)
        error = OutputCollision(
            f"{entry.path} and {rivals[0].path} would both be written to {destination.name}; rename one"
        )
        job = Job(folder.input / entry.path, destination, folder.profile, entry.id)
        self._outcomes.record(Running(folder, entry, time.monotonic()), Outcome(job, None, error, {}))
        return True

    def in_pipeline(self, folder: Folder, path: str) -> bool:
        """A version of ``path`` (maybe an older row) is still being processed."""
        return any(r.folder.name == folder.name and r.entry.path == path for r in self._running.values())

    def still_the_claimed_version(self, folder: Folder, entry: Entry) -> bool:
        source = folder.input / entry.path
        try:
            st = os.lstat(source)  # a link is judged as itself; the decode stage refuses it
        except FileNotFoundError:
            if not self._watchers[folder.name].still_reachable():
                # Not gone: its share was unmounted a moment ago. Wait for it, forget nothing.
                self._journal.retry_later(
                    entry.id,
                    "ShareUnavailable",
                    "the folder's share is unavailable",
                    time.time() + folder.poll_interval,
                    count_attempt=False,
                )
                return False
            self._journal.forget(entry.id)
            log.info("vanished", folder=folder.name, path=entry.path)
            return False
        except OSError as exc:
            self._journal.retry_later(
                entry.id,
                type(exc).__name__,
                str(exc),
                time.time() + folder.poll_interval,
                count_attempt=False,
            )
            return False
        if (st.st_size, st.st_mtime_ns) != (entry.fingerprint.size, entry.fingerprint.mtime_ns):
            # Changed after it looked complete: let the watcher wait for it to settle again.
            self._journal.forget(entry.id)
            self._watchers[folder.name].hint(source)
            log.info("changed_again", folder=folder.name, path=entry.path)
            return False
        return True
