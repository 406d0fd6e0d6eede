"""When the daemon tells systemd it is alive (``WATCHDOG=1``): its threads run *and* its work moves.

A ping means "restarting me would not help". So there is none when a folder's
observer or a pipeline stage has died (``unhealthy``), nor when work could go
(files due in a reachable folder, or files in the pipeline) but nothing has
moved (no job went in, no outcome came out) for ``stall_seconds``
(``stalled``). Each is logged once; systemd's watchdog then restarts the
daemon, which is what a wedged loop, observer or stage needs.

Waiting is not stalling: with nothing due (idle, an unreachable share, a
folder waiting for disk space, retries in backoff) the stall clock restarts,
and the pings go on. A journal write waiting for disk space pings from inside
its wait (:meth:`Liveness.waiting`). ``stall_seconds`` must therefore exceed
the longest a single file may take.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog

from daemon.service.notify import Notifier

log = structlog.get_logger("hotmatte")


class Liveness:
    """The stall clock and the ``WATCHDOG=1`` pings of one daemon."""

    def __init__(self, notifier: Notifier, stall_seconds: Callable[[], float]) -> None:
        self._notifier = notifier
        self._stall_seconds = stall_seconds
        self._last_progress = time.monotonic()
        self._next_ping = 0.0
        self._stall_logged = False
        self._unhealthy_logged = False

    def moved(self) -> None:
        """A job went into the pipeline, or an outcome came out (or a file was settled otherwise)."""
        self._last_progress = time.monotonic()

    def stalled(self, now: float, busy: bool) -> bool:
        """``busy`` (work could go) and nothing has moved for ``stall_seconds``."""
        if not busy:
            self._last_progress = now  # idle or only waiting: the clock starts with the next work
            return False
        return now - self._last_progress >= self._stall_seconds()

    def waiting(self) -> None:
        """Ping from inside a wait that is not a stall (a journal write waiting for disk space)."""
        self._notifier.watchdog()

    def tick(
        self,
        now: float,
        *,
        busy: Callable[[], bool],
        healthy: Callable[[], bool],
        details: Callable[[], Mapping[str, object]],
    ) -> None:
        """Ping if it is time and the daemon is healthy and not stalled; log each problem once."""
        interval = self._notifier.watchdog_interval
        if interval is None or now < self._next_ping:
            return
        self._next_ping = now + interval
        if self.stalled(now, busy()):
            if not self._stall_logged:
                log.error("stalled", seconds=round(now - self._last_progress, 1), **details())
                self._stall_logged = True
            return
        if self._stall_logged:
            log.info("unstalled")
            self._stall_logged = False
        if healthy():
            self._notifier.watchdog()
            self._unhealthy_logged = False
        elif not self._unhealthy_logged:
            log.error("unhealthy", **details())
            self._unhealthy_logged = True
