"""What the running daemon tells the outside world, on the loop's turn and never from another thread.

:class:`Reporter` is owned by :class:`~daemon.service.loop.Service` and called once per loop
turn (:meth:`Reporter.report`). It publishes, each on its own cadence:

- the console's snapshot and the folder facts behind ``/metrics`` (every
  :data:`STATUS_EVERY_SECONDS`, only with a console);
- systemd's ``STATUS=`` line (only when systemd listens);
- the per-stage timings, logged and saved beside the journal for ``hotmatte status``
  (every :data:`STAGES_EVERY_SECONDS`);
- the ``WATCHDOG=1`` ping, through :class:`~daemon.service.liveness.Liveness`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog

from daemon.finish.roots import folder_roots_available
from daemon.journal.backend import JournalBackend
from daemon.pipeline.stage_stats import report_path_for, save_report
from daemon.pipeline.stages import Pipeline
from daemon.service.console_link import snapshot_of
from daemon.service.disk_space import SpaceWaits
from daemon.service.liveness import Liveness
from daemon.service.metrics import FolderFacts, ServiceMetrics, root_kinds
from daemon.service.notify import Notifier
from daemon.watch.watcher import FolderWatcher

log = structlog.get_logger("hotmatte")

STATUS_EVERY_SECONDS = 2.0
#: How often the per-stage timings are logged and saved for `hotmatte status`.
STAGES_EVERY_SECONDS = 30.0


class Reporter:
    """Status, console snapshot, metrics, stage timings and watchdog for the service's loop."""

    def __init__(
        self,
        journal: JournalBackend,
        notifier: Notifier,
        metrics: ServiceMetrics,
        liveness: Liveness,
        space: SpaceWaits,
        watchers: Mapping[str, FolderWatcher],
        *,
        pipeline: Callable[[], Pipeline | None],
        console_on: Callable[[], bool],
        busy: Callable[[], bool],
        healthy: Callable[[], bool],
    ) -> None:
        self._journal = journal
        self._notifier = notifier
        self._metrics = metrics
        self._liveness = liveness
        self._space = space
        #: The service's own dict (a reload adds and removes watchers in it), read, never changed here.
        self._watchers = watchers
        # Getters: the pipeline and the console only exist once the service runs.
        self._pipeline = pipeline
        self._console_on = console_on
        self._busy = busy
        self._healthy = healthy
        self._next_status = 0.0
        self._last_status = ""
        self._next_stages = STAGES_EVERY_SECONDS
        self._stage_files = 0
        #: Plain facts for the console, replaced whole (one assignment) so its thread never sees half.
        self.snapshot: dict[str, object] = {}
        self._next_snapshot = 0.0

    def status_text(self) -> str:
        pipeline = self._pipeline()
        in_flight = pipeline.in_flight() if pipeline else 0
        reachable = [n for n, w in self._watchers.items() if w.available and folder_roots_available(w.folder)]
        waiting = [n for n in self._watchers if n not in reachable]
        full = self._space.waiting()
        text = f"{self._journal.backlog()} to do, {in_flight} in the pipeline, {len(self._watchers)} folders"
        text += f" ({', '.join(waiting)} unreachable)" if waiting else ""
        return text + (f" ({', '.join(full)} waiting for disk space)" if full else "")

    def _publish_stage_timings(self) -> None:
        """Log the per-stage timings and save them beside the journal, once new files went through."""
        pipeline = self._pipeline()
        assert pipeline is not None
        report = pipeline.stage_report()
        files = sum(s.files for s in report.stages)
        if files == self._stage_files:
            return
        self._stage_files = files
        log.info("stages", **report.to_dict())
        try:
            save_report(report, report_path_for(self._journal.path))
        except OSError as exc:  # a report for `status`; never a reason to stop processing
            log.warning("stages_not_saved", error=str(exc))

    def _details(self) -> dict[str, object]:
        """What an ``unhealthy`` or ``stalled`` log line says about the daemon."""
        pipeline = self._pipeline()
        return {
            "folders": {n: w.healthy() for n, w in self._watchers.items()},
            "pipeline": pipeline.healthy() if pipeline else False,
            "in_flight": pipeline.in_flight() if pipeline else 0,
            "backlog": self._journal.backlog(),
        }

    def _send_status(self, now: float) -> None:
        """``STATUS=`` for systemd. Built only when someone listens: it counts the journal's backlog."""
        text = self.status_text()
        # Going idle or busy is told at once, so `systemctl status` never shows a stale "0 to do"
        # while a burst runs; other changes at most every STATUS_EVERY_SECONDS.
        idle_changed = text.startswith("0 to do") != self._last_status.startswith("0 to do")
        if text != self._last_status and (idle_changed or now >= self._next_status):
            self._next_status = now + STATUS_EVERY_SECONDS
            self._notifier.status(text)
            self._last_status = text

    def _publish_snapshot(self, reachable: Mapping[str, bool]) -> None:
        pipeline = self._pipeline()
        assert pipeline is not None
        self.snapshot = snapshot_of(pipeline, self._journal, reachable)

    def _publish_metrics(self, reachable: Mapping[str, bool]) -> None:
        """Folder facts for /metrics, on the snapshot's cadence (scrapes read them, never the loop)."""
        pipeline = self._pipeline()
        assert pipeline is not None
        waiting = set(self._space.waiting())
        facts = {
            n: FolderFacts(
                up=w.healthy(),
                reachable=reachable[n],
                waiting_for_space=n in waiting,
                roots=root_kinds(w.folder),
            )
            for n, w in self._watchers.items()
        }
        self._metrics.publish(facts, pipeline.in_flight())

    def report(self) -> None:
        now = time.monotonic()
        if self._console_on() and now >= self._next_snapshot:
            self._next_snapshot = now + STATUS_EVERY_SECONDS
            # Probed once for both: a root on a share costs a stat over the network.
            reachable = {
                n: w.available and folder_roots_available(w.folder) for n, w in self._watchers.items()
            }
            self._publish_snapshot(reachable)
            self._publish_metrics(reachable)
        if self._notifier.enabled:
            self._send_status(now)
        if now >= self._next_stages:
            self._next_stages = now + STAGES_EVERY_SECONDS
            self._publish_stage_timings()
        # No ping when unhealthy or stalled: systemd's watchdog restarts us (daemon/service/liveness.py).
        self._liveness.tick(now, busy=self._busy, healthy=self._healthy, details=self._details)
