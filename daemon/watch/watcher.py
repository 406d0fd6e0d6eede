"""Noticing files in hot folders, and deciding when each one is complete.

Events are hints, scans are the truth (NOTES §3): watchdog misses files that
existed before start, drops inotify overflows, and its polling emitter stops
itself when a share hiccups. So each folder gets a :class:`FolderWatcher`
thread that

* runs a watchdog observer whose handler only enqueues paths (it never raises:
  an exception there would end watchdog's dispatch thread);
* scans the whole tree at start, whenever the observer had to be restarted or
  the share came back, and every ``reconcile_seconds``;
* restarts a dead observer or emitter (supervision), and while the folder's
  share is unreachable waits, logging once, without holding up other folders;
* hands a file on only once :class:`StabilityTracker` has seen its
  (size, mtime_ns) unchanged for ``stable_seconds`` and it is at least
  ``min_age_seconds`` old.

Symbolic links (to files or folders), FIFOs, sockets and devices are never followed or opened
here: scans, the polling observer and hints all look with ``lstat``, no walk descends into a
linked folder, and a hint for a path behind a link is dropped. Each link or special file is
handed on like a file (its own ``lstat`` is its fingerprint, so the journal records it once) and
the decode stage refuses it (:mod:`daemon.beneath`), which records it as a failure.

The folder is anchored to the filesystem it is on when first reached (:mod:`daemon.watch.shares`): a
share unmounted from under it leaves an empty mount point, which is not the folder. Until the
share is back the folder is unavailable (``share_lost`` once, then ``share_back`` and a rescan).
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

from daemon.config import Folder
from daemon.watch.filters import FolderFilter
from daemon.watch.mounts import ObserverKind, choose_observer, read_mounts
from daemon.watch.shares import ShareAnchor
from daemon.watch.stability import StabilityTracker

log = structlog.get_logger("hotmatte.watch")

#: Seconds between two looks at a folder (events, stability, supervision).
TICK_SECONDS = 0.25

# Creation, writes, renames and metadata changes; opens and reads are left out because the
# daemon's own reads of a file would otherwise wake it up again.
_EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    FileAttribEvent,
    DirCreatedEvent,
    DirMovedEvent,
]


# --- the per-folder thread --------------------------------------------------------------------------


class _HintHandler(FileSystemEventHandler):
    """Puts event paths on a queue. Never raises: that would end watchdog's dispatch thread."""

    def __init__(self, hints: queue.SimpleQueue[tuple[str, bool]]) -> None:
        self._hints = hints

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            path = event.dest_path if event.event_type == "moved" else event.src_path
            self._hints.put((os.fsdecode(path), event.is_directory))
        except Exception:  # must not escape into watchdog; the reconcile scan covers it
            return


ReadyCallback = Callable[[Folder, Path, os.stat_result], None]
SettledCheck = Callable[[Folder, Path, os.stat_result], bool]


class FolderWatcher:
    """Watches one hot folder and calls ``on_ready(folder, path, stat)`` for each complete file.

    ``is_settled(folder, path, stat)`` lets scans skip files the journal has already seen in
    that exact version, so a reconcile does not re-examine a finished backlog.
    """

    def __init__(
        self,
        folder: Folder,
        on_ready: ReadyCallback,
        is_settled: SettledCheck,
        *,
        reconcile_seconds: float,
        mounts_text: str | None = None,
    ) -> None:
        self.folder = folder
        mounts = read_mounts() if mounts_text is None else mounts_text
        self.kind: ObserverKind = choose_observer(folder, mounts)
        self._on_ready = on_ready
        self._is_settled = is_settled
        self._reconcile_seconds = reconcile_seconds
        self._filter = FolderFilter.for_folder(folder)
        self._tracker = StabilityTracker(folder.stable_seconds, folder.min_age_seconds)
        self._hints: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._observer: BaseObserver | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{folder.name}", daemon=True)
        self._available = False
        self._anchor = ShareAnchor(folder.input)
        self._announced_lost = False
        self._next_probe = 0.0
        self._next_reconcile = 0.0
        self.scans = 0

    # public ---------------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False while the folder's share (or the folder itself) cannot be reached."""
        return self._available

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._stop_observer()

    def still_reachable(self) -> bool:
        """Looks now (from any thread) whether the folder is there and on its own filesystem.

        The service asks before concluding that a file vanished: a file is not gone because
        its share was unmounted a moment ago and this watcher has not noticed yet.
        """
        return self._anchor.reachable()

    def hint(self, path: Path) -> None:
        """Ask for ``path`` to be looked at again (for example, it changed after being queued)."""
        self._hints.put((str(path), False))

    def healthy(self) -> bool:
        """The thread runs and, while the share is reachable, so do the observer and its emitters."""
        if not self._thread.is_alive():
            return False
        return not self._available or self._observer_alive()

    # the loop -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except OSError as exc:
                self._lose_share(exc)
            except Exception as exc:  # a bug in one look must not stop the folder for good
                log.error("watch_error", folder=self.folder.name, error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(TICK_SECONDS)

    def _tick(self) -> None:
        now = time.monotonic()
        if not self._available:
            if now < self._next_probe:
                return
            self._next_probe = now + max(self.folder.poll_interval, 2.0)
            self._probe()
            self._restore_share()
            return
        self._probe()  # one stat: is the share still mounted here?
        if not self._observer_alive():
            log.warning("observer_restarted", folder=self.folder.name, kind=self.kind)
            self._probe()
            self._start_observer()
            self._scan_everything()
        self._drain_hints()
        if now >= self._next_reconcile:
            self._scan_everything()
        for path, st in self._tracker.due():
            self._on_ready(self.folder, path, st)
        while self._tracker.unreadable:
            self._report_unreadable(self._tracker.unreadable.pop())

    def _probe(self) -> None:
        """Raise ``OSError`` unless the folder is reachable and on the filesystem it was first on."""
        st = os.stat(self.folder.input)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self.folder.input))
        moved_to = self._anchor.check(st)
        if moved_to is not None:
            log.warning(
                "share_mounted",
                folder=self.folder.name,
                input=str(self.folder.input),
                filesystem=f"{moved_to.source} ({moved_to.fs_type}) on {moved_to.mount_point}",
            )
            self._stop_observer()  # it watches the folder below the new mount: restarted, then a scan

    def _restore_share(self) -> None:
        self._start_observer()
        self._available = True
        if self._announced_lost:
            log.info("share_back", folder=self.folder.name, input=str(self.folder.input))
            self._announced_lost = False
        self._scan_everything()

    def _lose_share(self, exc: OSError) -> None:
        was_available = self._available
        self._available = False
        self._next_probe = time.monotonic() + max(self.folder.poll_interval, 2.0)
        self._stop_observer()
        if was_available or not self._announced_lost:
            log.warning(
                "share_lost",
                folder=self.folder.name,
                input=str(self.folder.input),
                error=f"{type(exc).__name__}: {exc.strerror or exc}",
            )
            self._announced_lost = True

    # observer -------------------------------------------------------------------------------------

    def _observer_alive(self) -> bool:
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        emitters = list(observer.emitters)
        return bool(emitters) and all(e.is_alive() for e in emitters)

    def _start_observer(self) -> None:
        self._stop_observer()
        try:
            self._observer = self._new_observer(self.kind)
        except OSError as exc:
            if self.kind != "native" or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            # Out of inotify watches or instances: polling still sees everything, just later.
            log.warning("observer_fallback", folder=self.folder.name, error=str(exc), kind="polling")
            self.kind = "polling"
            self._observer = self._new_observer(self.kind)

    def _new_observer(self, kind: ObserverKind) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserverVFS(self._snapshot_stat, os.scandir, polling_interval=self.folder.poll_interval)
            if kind == "polling"
            else Observer()
        )
        observer.schedule(
            _HintHandler(self._hints),
            str(self.folder.input),
            recursive=self.folder.recursive,
            event_filter=_EVENT_TYPES,
        )
        observer.daemon = True
        observer.start()
        return observer

    def _snapshot_stat(self, path: str) -> os.stat_result:
        """The polling observer's ``stat``: ``lstat`` below the root, so it never walks into a
        linked folder (watchdog's default ``os.stat`` does); the root itself may be a link."""
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) and os.path.normpath(path) == os.path.normpath(self.folder.input):
            return os.stat(path)
        return st

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=5.0)
        except (RuntimeError, OSError) as exc:
            log.debug("observer_stop_failed", folder=self.folder.name, error=str(exc))

    # scans and hints ------------------------------------------------------------------------------

    def _drain_hints(self) -> None:
        while True:
            try:
                raw, _is_directory = self._hints.get_nowait()
            except queue.Empty:
                return
            path = Path(raw)
            if path == self.folder.input or self._behind_a_link(path):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            except PermissionError:
                self._report_unreadable(path)
                continue
            if stat.S_ISDIR(st.st_mode):
                relative = path.relative_to(self.folder.input)
                if self.folder.recursive and not self._filter.excludes(relative):
                    self._scan(path)
                continue
            self._consider(path, st)

    def _behind_a_link(self, path: Path) -> bool:
        """``path`` is outside the folder, or a folder between it and the hot folder is not a real
        folder (a link, or gone): such a hint is dropped, since hints are only hints and the
        scans never walk into a link."""
        try:
            relative = path.relative_to(self.folder.input)
        except ValueError:
            return True
        current = self.folder.input
        for part in relative.parts[:-1]:
            current = current / part
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return True
            except OSError:
                return True
        return False

    def _consider(self, path: Path, st: os.stat_result | None) -> None:
        """Track ``path`` (its ``lstat``: a link is tracked as itself) if it is work not yet settled."""
        try:
            relative = path.relative_to(self.folder.input)
        except ValueError:
            return
        if path in self._tracker:
            return
        if st is None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
            except PermissionError:
                self._report_unreadable(path)
                return
        if stat.S_ISDIR(st.st_mode):
            return
        # Links, FIFOs, sockets and devices are work too: each is recorded once as a failure.
        wanted = self._filter.accepts_link(relative) if stat.S_ISLNK(st.st_mode) else self._filter(relative)
        if wanted and not self._is_settled(self.folder, path, st):
            self._tracker.note(path, st)

    def _scan_everything(self) -> None:
        self._scan(self.folder.input)
        self.scans += 1
        self._next_reconcile = time.monotonic() + self._reconcile_seconds

    def _scan(self, top: Path) -> None:
        """Walk ``top`` and track every file that is work and not yet settled in the journal.

        Links are never followed: a linked folder is tracked as a link, not walked. An error
        reading the folder's root propagates (the share is gone); a sub-folder that vanished
        mid-walk is skipped, one that cannot be read is logged.
        """
        pending = [top]
        while pending:
            directory = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
                if directory == self.folder.input:
                    raise
                if isinstance(exc, PermissionError):
                    log.warning("unreadable_directory", folder=self.folder.name, path=str(directory))
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    relative = path.relative_to(self.folder.input)
                    if self.folder.recursive and self._filter.accepts_directory(relative):
                        pending.append(path)
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except PermissionError:
                    self._report_unreadable(path)
                    continue
                self._consider(path, st)

    def _report_unreadable(self, path: Path) -> None:
        # Not silent: the operator must fix the permissions; the next scan tries again.
        log.warning("unreadable_file", folder=self.folder.name, path=str(path))
