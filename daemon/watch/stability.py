"""When a file counts as completely written.

Events cannot say it: ``created`` fires as soon as a copy starts, and over SMB or NFS nothing
fires at all. Like Apache Camel's ``readLock=changed`` and NiFi's minimum file age (NOTES §3),
a file is complete once its (size, mtime_ns) stopped changing for a while and it is old enough.

Everything is ``lstat``-based: a symbolic link or a special file in a hot folder is tracked as
itself (its own size and times), never as what it points to, so it is reported once and the
decode stage can refuse it without the daemon ever having looked through it.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    unchanged_since: float
    check_at: float


class StabilityTracker:
    """Files seen but not yet complete; :meth:`due` returns those that have settled.

    A file is complete once its (size, mtime_ns) stayed the same for ``stable_seconds`` (measured on
    this machine's monotonic clock) and it is ``min_age_seconds`` old. Age counts from the file's
    mtime or from when we first saw it unchanged, whichever is longer, so a NAS whose clock runs
    ahead cannot hold files back for ever.
    """

    def __init__(
        self,
        stable_seconds: float,
        min_age_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.stable_seconds = stable_seconds
        self.min_age_seconds = min_age_seconds
        self._clock = clock
        self._wall = wall_clock
        self._candidates: dict[Path, _Candidate] = {}
        self.unreadable: list[Path] = []

    def __len__(self) -> int:
        return len(self._candidates)

    def __contains__(self, path: object) -> bool:
        return path in self._candidates

    def note(self, path: Path, st: os.stat_result | None = None) -> None:
        """Start watching ``path`` settle; a path already tracked keeps its history.

        Anything but a folder is tracked: a link or a FIFO is reported like a file, so that it is
        recorded (and refused) once instead of being silently skipped.
        """
        if path in self._candidates:
            return
        if st is None:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return
        if stat.S_ISDIR(st.st_mode):
            return
        self._restart(path, st, self._clock())

    def _restart(self, path: Path, st: os.stat_result, now: float) -> None:
        self._candidates[path] = _Candidate(st.st_size, st.st_mtime_ns, now, now + self.stable_seconds)

    def discard(self, path: Path) -> None:
        self._candidates.pop(path, None)

    def due(self) -> list[tuple[Path, os.stat_result]]:
        """Re-check the candidates whose wait is over; return (and forget) the complete ones.

        A file that can no longer be stat'ed for lack of permission is dropped and listed in
        :attr:`unreadable` for the caller to report. Any other ``OSError`` propagates: the caller
        treats it as the share failing.
        """
        now = self._clock()
        ready = []
        for path, candidate in list(self._candidates.items()):
            if candidate.check_at > now:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                del self._candidates[path]
                continue
            except PermissionError:
                del self._candidates[path]
                self.unreadable.append(path)
                continue
            if stat.S_ISDIR(st.st_mode):  # replaced by a folder: the scan walks it
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (candidate.size, candidate.mtime_ns):
                self._restart(path, st, now)
                continue
            wait = self._remaining_wait(candidate, st, now)
            if wait <= 0:
                del self._candidates[path]
                ready.append((path, st))
            else:
                candidate.check_at = now + wait
        return ready

    def _remaining_wait(self, candidate: _Candidate, st: os.stat_result, now: float) -> float:
        unchanged_for = now - candidate.unchanged_since
        stable_wait = self.stable_seconds - unchanged_for
        age = max(self._wall() - st.st_mtime_ns / 1e9, unchanged_for)
        return max(stable_wait, self.min_age_seconds - age)
