"""Folders waiting for disk space: a full disk is never a property of the file.

When writing a result, an error copy or a record fails with ``ENOSPC``/``EDQUOT``
(:class:`~daemon.errors.DiskFull`), the file goes back to pending without
counting an attempt and its folder *waits*: it is logged once (``disk_full``),
shown in ``hotmatte status``'s source (systemd ``STATUS=``), and nothing more is
claimed from it. Every ``retry.backoff_seconds`` (at most a minute) one file is let through as a probe;
the first outcome that is not a full disk ends the wait (``disk_space_back``)
and the folder resumes at full speed. So however long the disk stays full, no
file is failed for it and the retry budget is never spent on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

log = structlog.get_logger("hotmatte")

#: However slow the configured backoff, a waiting folder looks for space at least this often.
MAX_PROBE_SECONDS = 60.0


@dataclass
class _Wait:
    reason: str
    next_probe: float
    probing: bool = False


class SpaceWaits:
    """Which folders wait for space, and when each may send its next probe."""

    def __init__(self, probe_seconds: float = 5.0) -> None:
        #: Seconds between two probes of a waiting folder (the daemon sets it from its retry config).
        self.probe_seconds = min(probe_seconds, MAX_PROBE_SECONDS)
        self._waits: dict[str, _Wait] = {}

    def hold(self, folder: str, reason: str, now: float | None = None) -> None:
        """``folder`` met a full disk: wait (logged once per episode), probe again later."""
        now = time.monotonic() if now is None else now
        wait = self._waits.get(folder)
        if wait is None:
            log.error("disk_full", folder=folder, reason=reason, waiting="until space returns")
            self._waits[folder] = _Wait(reason, now + self.probe_seconds)
            return
        wait.reason, wait.next_probe, wait.probing = reason, now + self.probe_seconds, False

    def release(self, folder: str) -> None:
        """An outcome of ``folder`` that was not a full disk: the wait is over."""
        if self._waits.pop(folder, None) is not None:
            log.info("disk_space_back", folder=folder)

    def claimable(self, folder: str, now: float | None = None) -> bool:
        """Work may be claimed from ``folder`` (it does not wait, or its probe is due)."""
        wait = self._waits.get(folder)
        if wait is None:
            return True
        now = time.monotonic() if now is None else now
        return not wait.probing and now >= wait.next_probe

    def claimed(self, folder: str) -> None:
        """A file of a waiting ``folder`` went out as its probe: nothing more until it ends."""
        wait = self._waits.get(folder)
        if wait is not None:
            wait.probing = True

    def probe_ended(self, folder: str, now: float | None = None) -> None:
        """Any outcome of a waiting ``folder``: the next probe may go after the usual pause.

        Called before the outcome is handled, which then releases the wait (it wrote something)
        or holds it again (the disk is still full); an outcome that shows neither (the file
        vanished, or failed before writing) must not leave the folder waiting for a probe forever.
        """
        wait = self._waits.get(folder)
        if wait is not None and wait.probing:
            wait.probing = False
            wait.next_probe = (time.monotonic() if now is None else now) + self.probe_seconds

    def waiting(self) -> list[str]:
        return sorted(self._waits)
