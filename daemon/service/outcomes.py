"""What the daemon does with each pipeline outcome: journal it, log it, file the original.

Success marks the row done (and moves the original to ``done_dir`` when the
folder says ``on_success: move``). A transient error (see :mod:`daemon.errors`)
goes back to pending with exponential backoff until ``retry.max_attempts``
failed tries; a permanent one, or anything unexpected, leaves a copy of the
original and a readable ``.error.json`` in ``error_dir`` and marks the row
failed (in that order, so a failed row always has its record).

A full disk (:class:`DiskFull`, met by the result or by the error record) is
not the file's fault: the row goes back to pending uncounted and the folder
waits for space (:mod:`daemon.service.disk_space`). Nothing that goes wrong while
recording an outcome may stop the daemon.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from daemon.config import Folder, Retry
from daemon.errors import (
    DiedWhileProcessing,
    DiskFull,
    HotmatteError,
    InputError,
    ShareUnavailable,
    TransientError,
)
from daemon.finish.failures import describe, move_to_done, record_failure
from daemon.journal.backend import JournalBackend
from daemon.journal.store import Entry
from daemon.pipeline.stages import Outcome
from daemon.service.disk_space import MAX_PROBE_SECONDS, SpaceWaits
from daemon.service.metrics import Outcome as Counted
from daemon.service.metrics import ServiceMetrics, landed_at

log = structlog.get_logger("hotmatte")

#: A row that was running at this many crashes in a row is quarantined, not tried again.
QUARANTINE_AFTER_CRASHES = 2


@dataclass(frozen=True)
class Running:
    """A journal row handed to the pipeline, with the folder settings it was started under."""

    folder: Folder
    entry: Entry
    started: float


class OutcomeRecorder:
    """Turns outcomes into journal transitions, log events and error records."""

    def __init__(
        self,
        journal: JournalBackend,
        retry: Callable[[], Retry],
        space: SpaceWaits | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._journal = journal
        self._retry = retry
        self.space = space or SpaceWaits(retry().backoff_seconds)
        #: Counts each journal transition below (files processed by outcome, failures by class).
        self.metrics = metrics

    def _count(self, folder: Folder, outcome: Counted, error_class: str | None = None) -> None:
        if self.metrics is not None:
            self.metrics.outcome(folder.name, outcome, error_class=error_class)

    def record(self, running: Running, outcome: Outcome) -> None:
        """Journal, log and file away one outcome of a job started for ``running``."""
        folder, entry = running.folder, running.entry
        self.space.probe_ended(folder.name)
        current = self._journal.get_by_id(entry.id)
        superseded = current is None or current.state != "running"
        if outcome.error is None:
            self._succeeded(folder, entry, outcome, running.started, superseded)
        elif superseded:
            log.info("superseded", folder=folder.name, path=entry.path)
        elif isinstance(outcome.error, FileNotFoundError) and not outcome.job.source.exists():
            self._journal.forget(entry.id)
            log.info("vanished", folder=folder.name, path=entry.path)
        else:
            self._failed(folder, entry, outcome.error)

    def quarantine(self, folder: Folder, entry: Entry) -> None:
        """Fail a row the daemon died on ``entry.crashes`` times in a row, through the failure path."""
        error = DiedWhileProcessing(
            f"the daemon died while processing this file ({entry.crashes} times in a row);"
            " it is not tried again until it changes"
        )
        log.error("quarantined", folder=folder.name, path=entry.path, crashes=entry.crashes)
        self._failed(folder, entry, error)

    def _succeeded(
        self, folder: Folder, entry: Entry, outcome: Outcome, started: float, superseded: bool
    ) -> None:
        output = str(outcome.output) if outcome.output else None
        self.space.release(folder.name)  # a result was written: there is space again
        # Before the original may be moved to done_dir (a move would set its ctime to now).
        landed = landed_at(outcome.job.source) if self.metrics is not None and not superseded else None
        if folder.on_success == "move" and not superseded:
            fp = entry.fingerprint
            try:
                moved = move_to_done(folder, outcome.job.source, (fp.size, fp.mtime_ns))
            except (OSError, HotmatteError) as exc:  # a link below done_dir, its share gone, disk full
                # The original stayed in the hot folder. Were the row marked done, the folder (which
                # redoes done files seen again) would process it again at every scan; as a failure
                # it waits for space or the share, or ends failed with its record, like any file.
                log.warning("move_failed", folder=folder.name, path=entry.path, error=str(exc))
                self._failed(folder, entry, exc)
                return
            if moved is None:
                log.info("move_skipped", folder=folder.name, path=entry.path, reason="changed since")
            else:
                log.info("moved", folder=folder.name, path=entry.path, to=str(moved))
        if not superseded:
            self._journal.mark_done(entry.id, output, outcome.confidence, outcome.review)
            if self.metrics is not None:
                self.metrics.outcome(folder.name, "review" if outcome.review else "done", landed=landed)
        timings = {stage: round(seconds, 4) for stage, seconds in outcome.timings.items()}
        log.info(
            "done",
            folder=folder.name,
            path=entry.path,
            output=output,
            confidence=outcome.confidence,
            review=outcome.review,
            timings=timings,
            seconds=round(time.monotonic() - started, 3),
        )

    def _wait_for_space(self, folder: Folder, entry: Entry, error_class: str, reason: str) -> None:
        self.space.probe_seconds = min(self._retry().backoff_seconds, MAX_PROBE_SECONDS)
        self._journal.retry_later(
            entry.id, error_class, reason, time.time() + self.space.probe_seconds, count_attempt=False
        )
        self.space.hold(folder.name, reason)
        self._count(folder, "retry", error_class)
        log.info("waiting_for_space", folder=folder.name, path=entry.path)

    def _failed(self, folder: Folder, entry: Entry, error: BaseException) -> None:
        error_class, reason = describe(error)
        if isinstance(error, DiskFull):
            self._wait_for_space(folder, entry, error_class, reason)
            return
        tries = entry.attempts + 1  # failed tries, this one included
        not_the_files_fault = isinstance(error, ShareUnavailable)
        # A share that is gone waits whatever the retry budget: nothing was tried on the file.
        if not_the_files_fault or (self._is_retryable(error) and tries < self._retry().max_attempts):
            delay = self._backoff(tries)
            self._journal.retry_later(
                entry.id, error_class, reason, time.time() + delay, count_attempt=not not_the_files_fault
            )
            self._count(folder, "retry", error_class)
            log.warning(
                "retry",
                folder=folder.name,
                path=entry.path,
                error_class=error_class,
                reason=reason,
                attempt=tries,
                delay=round(delay, 1),
            )
            return
        if self._is_retryable(error):
            reason = f"gave up after {tries} attempts: {reason}"
        source = folder.input / entry.path
        report: str | None = None
        try:
            report = str(record_failure(folder, source, error_class, reason, attempts=tries))
        except DiskFull as exc:
            # The error folder's disk is full: the record must not be lost, so the file waits too.
            self._wait_for_space(folder, entry, error_class, str(exc))
            return
        except ShareUnavailable as exc:
            # The error folder's share is gone: the file waits (uncounted) and fails again, with
            # its record, once the share is back, rather than failing with no record.
            due = time.time() + self._backoff(tries)
            self._journal.retry_later(entry.id, error_class, reason, due, count_attempt=False)
            self._count(folder, "retry", error_class)
            log.warning("error_record_waits", folder=folder.name, path=entry.path, reason=str(exc))
            return
        except Exception as exc:  # a link below error_dir, a bug...: must not stop the loop
            # The journal keeps why no record exists (e.g. "out-errors/evil: symbolic link not followed").
            reason = f"{reason}; no error record was written: {exc}"
            log.error(
                "error_record_failed",
                folder=folder.name,
                path=entry.path,
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            self.space.release(folder.name)  # the record was written: there is space again
        self._journal.mark_failed(entry.id, error_class, reason)
        self._count(folder, "failed", error_class)
        log.error(
            "failed",
            folder=folder.name,
            path=entry.path,
            error_class=error_class,
            reason=reason,
            error_report=report,
        )

    @staticmethod
    def _is_retryable(error: BaseException) -> bool:
        if isinstance(error, InputError):
            return False
        # A bare OSError from a stage is the filesystem, not the photo: EIO, ESTALE, a share hiccup.
        return isinstance(error, TransientError | OSError) and not isinstance(error, FileNotFoundError)

    def _backoff(self, tries: int) -> float:
        retry = self._retry()
        return float(min(retry.backoff_seconds * 2 ** max(tries - 1, 0), retry.backoff_max_seconds))
