"""Files arriving: the folder watchers, and recording what they report in the journal.

Each configured folder has a :class:`~daemon.watch.watcher.FolderWatcher` on its own thread. A
watcher puts each complete file on the service's inbox as a :class:`Ready`; the loop, on its
own thread, hands it to :meth:`Arrivals.record`, which offers it to the journal (``queued``).
Watchers ask :meth:`Arrivals` whether a file is already settled in the journal, so a rescan
does not offer what is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from daemon.config import Config, Folder
from daemon.finish.roots import remember_roots
from daemon.journal.backend import JournalBackend
from daemon.service.folder_files import fingerprint, relative_key
from daemon.service.metrics import ServiceMetrics
from daemon.watch.watcher import FolderWatcher

log = structlog.get_logger("hotmatte")


@dataclass(frozen=True)
class Ready:
    """A file a watcher found complete, on its way through the inbox to the journal."""

    folder: Folder
    path: Path
    size: int
    mtime_ns: int


class Arrivals:
    """Starts the watchers (into the service's dict of them) and records what they find."""

    def __init__(
        self,
        config: Callable[[], Config],
        journal: JournalBackend,
        metrics: ServiceMetrics,
        watchers: dict[str, FolderWatcher],
        put: Callable[[Ready], None],
    ) -> None:
        self._config = config  # a getter: a reload replaces the service's config
        self._journal = journal
        self._metrics = metrics
        #: The service's own dict: it stops and removes watchers on reload; they are started here.
        self._watchers = watchers
        self._put = put

    def start_watcher(self, folder: Folder) -> None:
        remember_roots(folder)  # a folder a reload adds: its roots are remembered as it starts
        watcher = FolderWatcher(
            folder, self._on_ready, self._is_settled, reconcile_seconds=self._config().reconcile_seconds
        )
        self._watchers[folder.name] = watcher
        self._metrics.folder_started(folder.name)
        watcher.start()
        log.info(
            "watching",
            folder=folder.name,
            input=str(folder.input),
            output=str(folder.output),
            observer=watcher.kind,
        )

    def _on_ready(self, folder: Folder, path: Path, st: os.stat_result) -> None:
        self._put(Ready(folder, path, st.st_size, st.st_mtime_ns))

    def _is_settled(self, folder: Folder, path: Path, st: os.stat_result) -> bool:
        key = fingerprint(self._config(), folder, st.st_size, st.st_mtime_ns)
        redo = folder.on_success == "move"
        return self._journal.is_settled(folder.name, relative_key(folder, path), key, redo_done=redo)

    def reachable(self, name: str) -> bool:
        """The folder's share is mounted (or its watcher has not started yet); any thread may ask."""
        watcher = self._watchers.get(name)
        return watcher is None or watcher.still_reachable()

    def _active_folder(self, name: str) -> Folder | None:
        watcher = self._watchers.get(name)
        return watcher.folder if watcher is not None else None

    def record(self, ready: Ready) -> None:
        folder = ready.folder
        if self._active_folder(folder.name) != folder:
            return  # a watcher that a reload has just replaced
        key = fingerprint(self._config(), folder, ready.size, ready.mtime_ns)
        relative = relative_key(folder, ready.path)
        if self._journal.offer(folder.name, relative, key, redo_done=folder.on_success == "move"):
            log.info("queued", folder=folder.name, path=relative, size=ready.size)
