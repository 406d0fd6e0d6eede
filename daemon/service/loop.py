"""``hotmatte run``: hot folders → journal → pipeline → outputs, until SIGTERM.

One main thread owns the loop. Folder watchers (their own threads) put complete
files on :attr:`Service._inbox`, and so does the pipeline with each outcome; the
loop records both in the journal, feeds the pipeline from the journal's pending
rows, and deals with results. Because the journal is the only source of work,
a file can be lost neither by a missed event nor by a crash: at worst it is
redone, and never once its output is known to exist.

Signals: SIGHUP re-reads the config (folders come and go without a restart; an
invalid config keeps the old one); SIGTERM and SIGINT drain in-flight files for
up to ``drain_timeout_seconds`` and exit 0.

Crashes: a row left ``running`` by a crash is a *suspect*; suspects run alone
(nothing else in the pipeline), so a second crash is pinned on the right file,
and a row that was running at :data:`~daemon.service.outcomes.QUARANTINE_AFTER_CRASHES`
crashes in a row is failed with ``DiedWhileProcessing`` instead of run again.

The ``WATCHDOG=1`` ping stops when a thread died or work has stalled, never
while the daemon merely waits (:mod:`daemon.service.liveness`).

A damaged journal found while running stops the daemon with exit 2 and one
line naming the repair (:mod:`daemon.journal.faults`), never a spin.

Here: the loop itself (start, feed, conclude, reload, stop). Its helpers, each owned by
:class:`Service`: :mod:`daemon.service.arrivals` (watchers → inbox → journal),
:mod:`daemon.service.claims` (checks a claimed row passes before it is submitted) and
:mod:`daemon.service.reporting` (status, console snapshot, metrics, stage timings, watchdog).
"""

from __future__ import annotations

import os
import queue
import signal
import sqlite3
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

import structlog

from daemon.config import Config, Folder, load_config
from daemon.console import ConsoleServer
from daemon.errors import ConfigError, DatabaseUnavailable, JournalUnusable, ShareUnavailable
from daemon.finish.roots import folder_roots_available, keep_state_beside, remember_roots
from daemon.finish.thumbs import thumb_key
from daemon.journal.backend import JournalBackend
from daemon.journal.opening import open_counter, open_journal
from daemon.journal.store import Entry
from daemon.journal.upkeep import JournalUpkeep
from daemon.logs import configure_logging
from daemon.pipeline.heap import keep_freed_buffers
from daemon.pipeline.stages import Job, Outcome, Pipeline, build_pipeline
from daemon.service.arrivals import Arrivals, Ready
from daemon.service.claims import ClaimChecks
from daemon.service.console_link import start_console
from daemon.service.folder_files import destination_for
from daemon.service.journal_waits import JournalWaits, StopWhileJournalFull
from daemon.service.liveness import Liveness
from daemon.service.metrics import ServiceMetrics
from daemon.service.notify import Notifier
from daemon.service.outcomes import QUARANTINE_AFTER_CRASHES, OutcomeRecorder, Running
from daemon.service.reporting import Reporter
from daemon.service.startup import recover_interrupted, remove_stale_temporaries_below
from daemon.watch.watcher import FolderWatcher

log = structlog.get_logger("hotmatte")

#: Settings the running engine and pipeline were built with; changing them needs a restart.
RESTART_KEYS = (
    "weights",
    "device",
    "precision",
    "model_size",
    "reuse_freed_memory",
    "max_megapixels",
    "psd_layer_budget_megapixels",
    "journal",
    "workers",
    "cluster",
)
#: Exit code for a set-up problem (bad config, no usable weights, journal unusable), as in daemon.cli.
EXIT_SETUP = 2
#: After the pipeline refused a job, feeding waits until it has fewer in flight or this long.
FULL_BACKOFF_SECONDS = 0.25
#: Items taken off the inbox per loop turn, so signals and feeding are not starved by a flood.
INBOX_BATCH = 1000


class Service:
    """The daemon's main loop; see the module docstring."""

    def __init__(
        self, config_path: Path | None, config: Config, journal: JournalBackend, notifier: Notifier
    ) -> None:
        self._config_path = config_path
        self._config = config
        self._journal = journal
        self._notifier = notifier
        self._inbox: queue.SimpleQueue[Ready | Outcome] = queue.SimpleQueue()
        self._watchers: dict[str, FolderWatcher] = {}
        self._running: dict[int, Running] = {}
        #: Prometheus metrics, in a registry of this service's own (served by the console).
        # Queue counts through a connection of their own (SQLite read-only, or the cluster's database).
        self._metrics = ServiceMetrics(lambda: open_counter(self._config))
        self._outcomes = OutcomeRecorder(journal, lambda: self._config.retry, metrics=self._metrics)
        self._stop_requested = False
        self._reload_requested = False
        #: (in flight when the pipeline refused a job, monotonic time the backoff ends)
        self._full: tuple[int, float] | None = None
        #: The suspect (a row a crash left running) now in the pipeline, alone.
        self._suspect: int | None = None
        self._liveness = Liveness(notifier, lambda: self._config.stall_seconds)
        self._waits = JournalWaits(notifier, self._liveness, lambda: self._stop_requested)
        self.pipeline: Pipeline | None = None
        self.drained = True
        self._console: ConsoleServer | None = None
        self._arrivals = Arrivals(
            lambda: self._config, journal, self._metrics, self._watchers, self._inbox.put
        )
        self._claims = ClaimChecks(
            journal, lambda: self._config, self._outcomes, self._watchers, self._running
        )
        self._reporter = Reporter(
            journal,
            notifier,
            self._metrics,
            self._liveness,
            self._outcomes.space,
            self._watchers,
            pipeline=lambda: self.pipeline,
            console_on=lambda: self._console is not None,
            busy=self._busy,
            healthy=self.healthy,
        )
        self._upkeep = JournalUpkeep(
            journal,
            # A folder whose share is unmounted is left out: its sources are not gone, only hidden.
            lambda: {f.name: f for f in self._config.folders if self._arrivals.reachable(f.name)},
            lambda: self._config.journal_keep_days,
        )

    # --- lifecycle ----------------------------------------------------------------------------------

    def run(self) -> int:
        # Before the (slow) model load, so a stop request during start-up still ends cleanly.
        self._install_signal_handlers()
        self._waits.attach(self._journal)
        self.pipeline = build_pipeline(self._config, self._inbox.put)
        engine = self.pipeline.engine
        self._metrics.model(str(engine.device), engine.size, engine.precision)
        keep_state_beside(self._journal.path)
        for folder in self._config.folders:
            remember_roots(folder)  # before anything is written or cleaned there (daemon.finish.roots)
        recover_interrupted(self._config, self._journal)
        remove_stale_temporaries_below(self._config)
        self.pipeline.start()
        for folder in self._config.folders:
            self._arrivals.start_watcher(folder)
        self._start_console()
        log.info(
            "start",
            pid=os.getpid(),
            folders=[f.name for f in self._config.folders],
            config=str(self._config_path or "embedded default"),
            journal=str(self._journal.path),
            # What precision: auto chose on these cores, so an operator can see it without /metrics.
            device=str(engine.device),
            precision=engine.precision,
        )
        self._notifier.ready(self._reporter.status_text())
        self._upkeep.start()  # prunes the journal now, then daily, on its own thread
        try:
            while not self._stop_requested:
                if self._journal.fault is not None:  # met by a watcher thread, say
                    raise self._journal.fault
                self._handle_inbox(timeout=0.2)
                if self._reload_requested:
                    self._reload_requested = False
                    self._reload()
                self._feed_pipeline()
                self._reporter.report()
        except JournalUnusable as exc:
            return self._abandon(exc)
        except StopWhileJournalFull:
            log.warning("stop", drained=False, reason="asked to stop while the journal disk is full")
            self.drained = False
            return 0
        try:
            return self._shut_down()
        except StopWhileJournalFull:  # the journal (a cluster's database) went away while draining
            log.warning("stop", drained=False, reason="the journal could not be written while stopping")
            self.drained = False
            return 0

    def _abandon(self, fault: JournalUnusable) -> int:
        """The journal became unusable while running: stop at once, exit 2, one line on stderr."""
        self._notifier.stopping()
        for watcher in self._watchers.values():
            watcher.stop(timeout=1.0)
        log.error("journal_unusable", error=str(fault))
        print(f"hotmatte: {fault}", file=sys.stderr)
        self.drained = self.pipeline.stop(0.0) if self.pipeline is not None else True
        return EXIT_SETUP

    def _install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            self._stop_requested = True

        def reload(signum: int, _frame: FrameType | None) -> None:
            self._reload_requested = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _shut_down(self) -> int:
        assert self.pipeline is not None
        self._notifier.stopping()
        log.info("stopping", in_flight=self.pipeline.in_flight(), timeout=self._config.drain_timeout_seconds)
        for watcher in self._watchers.values():
            watcher.stop()
        deadline = time.monotonic() + self._config.drain_timeout_seconds
        # Keep recording outcomes while draining, so the journal is current if we are killed mid-way.
        while self.pipeline.in_flight() and time.monotonic() < deadline:
            self._handle_inbox(timeout=0.2, outcomes_only=True)
        self.drained = self.pipeline.stop(0.0)
        self._handle_inbox(timeout=0.0, outcomes_only=True)
        # A file still in flight was cut short by this stop, not by a crash: not a quarantine step.
        self._journal.excuse(self._running)
        log.info("stop", drained=self.drained, left_running=len(self._running))
        self._upkeep.stop()
        if self._console is not None:
            self._console.stop()
        self._metrics.close()
        self._journal.close()
        return 0

    def _start_console(self) -> None:
        self._console = start_console(
            lambda: self._config,
            self._journal,
            self.pipeline,
            lambda: self._reporter.snapshot,
            self._metrics.registry,
        )

    def _thumbs_prefix(self, folder: Folder, entry: Entry) -> Path | None:
        """Where the console's thumbnails of ``entry`` go; None without a console (none are made)."""
        if self._config.console is None:
            return None
        return self._journal.path.parent / "console" / "thumbs" / thumb_key(folder.name, entry.path)

    # --- the loop -----------------------------------------------------------------------------------

    def _handle_inbox(self, timeout: float, *, outcomes_only: bool = False) -> None:
        try:
            item = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return
        handled = 0
        while True:
            # Every item taken off the queue is handled before the bound is checked: none is dropped.
            if isinstance(item, Ready):
                if not outcomes_only:
                    self._arrivals.record(item)
            else:
                self._conclude(item)
            handled += 1
            if handled >= INBOX_BATCH:
                return
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _claimable_folders(self, now: float) -> list[str]:
        """Folders work may be claimed from: reachable (input, and the output, error, review and
        done roots: daemon.finish.roots logs a lost one once), and not waiting for disk space."""
        space = self._outcomes.space
        return [
            n
            for n, w in self._watchers.items()
            if w.available and folder_roots_available(w.folder) and space.claimable(n, now)
        ]

    def _feed_pipeline(self) -> None:
        assert self.pipeline is not None
        now = time.monotonic()
        if self._full is not None:
            level, until = self._full
            if self.pipeline.in_flight() >= level and now < until:
                return  # still as full as when it last refused a job
            self._full = None
        if self._suspect is not None:
            return  # a suspect runs alone
        available = self._claimable_folders(now)
        while (entry := self._journal.claim(available)) is not None:
            folder = self._watchers[entry.folder].folder
            probe = entry.folder in self._outcomes.space.waiting()
            if probe:  # a folder waiting for space sends one file at a time, as a probe
                available.remove(entry.folder)
            if entry.crashes >= QUARANTINE_AFTER_CRASHES:
                self._outcomes.quarantine(folder, entry)
                self._liveness.moved()
                continue
            if entry.crashes and (self._running or self.pipeline.in_flight()):
                # A crash left it running: run it alone, so a second crash is pinned on the right file.
                self._journal.unclaim(entry.id)
                return
            if self._claims.in_pipeline(folder, entry.path):
                # An older version of this file is still in the pipeline; its output must not land
                # after this one's. Try again once it is out.
                self._journal.retry_later(
                    entry.id,
                    "Busy",
                    "previous version still in progress",
                    time.time() + 1.0,
                    count_attempt=False,
                )
                continue
            if not self._claims.still_the_claimed_version(folder, entry):
                continue
            if self._claims.refuse_if_output_taken(folder, entry):
                continue
            job = Job(
                folder.input / entry.path,
                destination_for(folder, entry.path, self._config),
                entry.profile or folder.profile,  # the operator's Re-run profile, else the folder's
                entry.id,
                review_below=folder.review_below,
                review_destination=destination_for(
                    folder, entry.path, self._config, folder.resolved_review_dir
                ),
                source_root=folder.input,
                thumbs=self._thumbs_prefix(folder, entry),
            )
            if not self.pipeline.submit(job, timeout=0):
                self._journal.unclaim(entry.id)
                # Feed again once one job is out, or after a short while whatever in_flight says:
                # it may already be 0 (all finished between the refusal and this line).
                level = max(self.pipeline.in_flight(), 1)
                self._full = (level, time.monotonic() + FULL_BACKOFF_SECONDS)
                return
            # Progress is a job that went in (or an outcome), never a claim undone: a full pipeline
            # that refuses every claim has not moved.
            self._liveness.moved()
            self._running[entry.id] = Running(folder, entry, time.monotonic())
            if probe:
                self._outcomes.space.claimed(entry.folder)
            log.info(
                "started",
                folder=folder.name,
                path=entry.path,
                attempt=entry.attempts + 1,
                profile=job.profile,
            )
            if entry.crashes:
                self._suspect = entry.id
                log.warning("suspect_alone", folder=folder.name, path=entry.path, crashes=entry.crashes)
                return

    # --- outcomes -----------------------------------------------------------------------------------

    def _conclude(self, outcome: Outcome) -> None:
        key = outcome.job.key
        running = self._running.pop(key, None) if isinstance(key, int) else None
        if key == self._suspect:
            self._suspect = None
        if running is None:
            log.error("unknown_outcome", source=str(outcome.job.source))
            return
        self._liveness.moved()
        self._metrics.stage_timings(outcome.timings)
        watcher = self._watchers.get(running.folder.name)
        if isinstance(outcome.error, OSError) and watcher is not None and not watcher.still_reachable():
            # The file did not vanish or break: its share went away under the read.
            error = ShareUnavailable(f"the folder's share is unavailable ({outcome.error})")
            outcome = replace(outcome, error=error)
        self._outcomes.record(running, outcome)

    # --- reload -------------------------------------------------------------------------------------

    def _reload(self) -> None:
        self._notifier.reloading()
        try:
            new = load_config(self._config_path)
        except ConfigError as exc:
            log.error("reload_failed", problems=exc.problems, kept="previous config")
            self._notifier.ready(self._reporter.status_text())
            return
        old = self._config
        needs_restart = [key for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)]
        if needs_restart:
            log.warning("reload_needs_restart", keys=needs_restart, kept="running values for these keys")
        self._config = new.model_copy(update={key: getattr(old, key) for key in needs_restart})
        configure_logging(self._config.log_level, self._config.log_format)
        old_folders = {f.name: f for f in old.folders}
        new_folders = {f.name: f for f in new.folders}
        removed = [n for n in old_folders if n not in new_folders or new_folders[n] != old_folders[n]]
        added = [n for n in new_folders if n not in old_folders or new_folders[n] != old_folders[n]]
        for name in removed:
            watcher = self._watchers.pop(name, None)
            if watcher is not None:
                watcher.stop()
        for name in added:
            self._arrivals.start_watcher(new_folders[name])
        log.info(
            "reload",
            added=[n for n in added if n not in old_folders],
            removed=[n for n in removed if n not in new_folders],
            changed=[n for n in added if n in old_folders],
        )
        self._notifier.ready(self._reporter.status_text())

    # --- health -----------------------------------------------------------------------------------

    def healthy(self) -> bool:
        assert self.pipeline is not None
        return self.pipeline.healthy() and all(w.healthy() for w in self._watchers.values())

    def _busy(self) -> bool:
        """Work could go: files in the pipeline, or due in a folder we may claim from."""
        assert self.pipeline is not None
        now = time.monotonic()
        return self.pipeline.in_flight() > 0 or self._journal.has_due_work(self._claimable_folders(now))


def run_daemon(config_path: Path | None) -> int:
    """Entry point of ``hotmatte run``; returns the process exit code."""
    configure_logging("info")
    # ConfigError and WeightsError reach cli.main, which prints one line each and exits 2.
    config = load_config(config_path)
    configure_logging(config.log_level, config.log_format)
    if config.reuse_freed_memory:
        keep_freed_buffers()  # before the journal, the console and the pipeline start threads
    try:
        journal = open_journal(config)
    except DatabaseUnavailable as exc:  # systemd restarts us: the server may be starting too
        print(f"hotmatte: {exc}", file=sys.stderr)
        return 1
    except JournalUnusable as exc:
        print(f"hotmatte: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except (OSError, sqlite3.Error) as exc:
        print(f"hotmatte: cannot open the journal {config.journal}: {exc}", file=sys.stderr)
        return EXIT_SETUP
    service = Service(config_path, config, journal, Notifier())
    try:
        code = service.run()
    except JournalUnusable as exc:  # met during start-up, before the loop
        print(f"hotmatte: {exc}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(EXIT_SETUP)
    if not service.drained:
        # Stage threads are still inside the model or an encoder. Letting the interpreter finalise
        # under them can crash at exit; their files stay `running` and are recovered at next start.
        sys.stdout.flush()
        os._exit(code)
    return code
