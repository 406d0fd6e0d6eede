"""Retry failed files: their journal rows go back to ``pending``, and the daemon takes them again.

The one code path behind the console's Failures page (retry one, retry all) and ``hotmatte retry``
(one file, a folder or a directory below it, every failed file). Only the journal changes: the
daemon's loop claims pending rows that are due, whoever put them there, so nothing talks to the
running service; in cluster mode the requeued file gets a new job that exactly one node takes
(:meth:`daemon.journal.backend.JournalBackend.requeue_failed`). The original never left the hot
folder (a failure leaves a copy and a record in ``error_dir``), so there is nothing to move
back; the row's retry budget starts again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Config
from daemon.errors import ConfigError
from daemon.journal.backend import JournalBackend
from daemon.journal.store import Entry

#: Failed rows read per page while collecting a target (bounded memory for huge failure lists).
PAGE = 1000


@dataclass(frozen=True)
class RetryTarget:
    """What to retry: every failed file (no folder), a folder's, or those at or below ``relative``."""

    folder: str | None = None
    #: A file's path relative to the folder's input, or a directory there (everything below it).
    relative: str | None = None

    def matches(self, entry: Entry) -> bool:
        if self.folder is not None and entry.folder != self.folder:
            return False
        if self.relative is None:
            return True
        return entry.path == self.relative or entry.path.startswith(self.relative.rstrip("/") + "/")

    def describe(self) -> str:
        if self.folder is None:
            return "every failed file"
        return f"{self.folder}/{self.relative}" if self.relative else f"folder {self.folder}"


def failed_matching(journal: JournalBackend, target: RetryTarget) -> list[Entry]:
    """The failed rows ``target`` names."""
    found: list[Entry] = []
    offset = 0
    while page := journal.failed(target.folder, limit=PAGE, offset=offset):
        found += [e for e in page if target.matches(e)]
        offset += len(page)
    return found


def retry_failed(journal: JournalBackend, target: RetryTarget) -> list[Entry]:
    """Put the failed rows ``target`` names back to pending; returns them as they were (with reasons)."""
    candidates = failed_matching(journal, target)
    requeued = set(journal.requeue_failed([e.id for e in candidates]))
    return [e for e in candidates if e.id in requeued]


def target_for(config: Config, argument: str) -> RetryTarget:
    """What ``hotmatte retry ARGUMENT`` names: a configured folder's name, or a file or directory
    at or below a folder's input (as the operator sees it on disk, even once the file is gone).

    A path outside every configured input is a usage error (:class:`ConfigError`, exit 2).
    """
    names = {f.name for f in config.folders}
    if argument in names and not os.path.exists(argument):
        return RetryTarget(argument)
    wanted = Path(os.path.abspath(argument))
    for folder in config.folders:
        for root in dict.fromkeys((Path(os.path.abspath(folder.input)), folder.input.resolve())):
            try:
                relative = wanted.relative_to(root)
            except ValueError:
                continue
            return RetryTarget(folder.name, relative.as_posix() if relative.parts else None)
    known = ", ".join(sorted(names)) or "none configured"
    raise ConfigError([f"{argument}: neither a configured folder ({known}) nor a path inside one's input"])
