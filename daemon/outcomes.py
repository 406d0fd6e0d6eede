"""What the daemon does with each pipeline outcome: journal it, log it, file the original.

Success marks the row done (and moves the original to ``done_dir`` when the
folder says ``on_success: move``). A transient error (see :mod:`daemon.errors`)
goes back to pending with exponential backoff until ``retry.max_attempts``; a
permanent one, or anything unexpected, marks the row failed and leaves a copy
of the original and a readable ``.error.json`` in ``error_dir``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from daemon.config import Folder, Retry
from daemon.errors import HotmatteError, InputError, ShareUnavailable, TransientError
from daemon.failures import describe, move_to_done, record_failure
from daemon.journal import Entry, Journal
from daemon.pipeline import Outcome

log = structlog.get_logger("hotmatte")


@dataclass(frozen=True)
class Running:
    """A journal row handed to the pipeline, with the folder settings it was started under."""

    folder: Folder
    entry: Entry
    started: float


class OutcomeRecorder:
    """Turns outcomes into journal transitions, log events and error records."""

    def __init__(self, journal: Journal, retry: Callable[[], Retry]) -> None:
        self._journal = journal
        self._retry = retry

    def record(self, running: Running, outcome: Outcome) -> None:
        """Journal, log and file away one outcome of a job started for ``running``."""
        folder, entry = running.folder, running.entry
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

    def _succeeded(
        self, folder: Folder, entry: Entry, outcome: Outcome, started: float, superseded: bool
    ) -> None:
        output = str(outcome.output) if outcome.output else None
        if not superseded:
            self._journal.mark_done(entry.id, output, outcome.confidence, outcome.review)
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
        if folder.on_success == "move" and not superseded:
            try:
                moved = move_to_done(folder, outcome.job.source)
            except (OSError, HotmatteError) as exc:  # a link below done_dir, its share gone
                log.warning("move_failed", folder=folder.name, path=entry.path, error=str(exc))
            else:
                log.info("moved", folder=folder.name, path=entry.path, to=str(moved))

    def _failed(self, folder: Folder, entry: Entry, error: BaseException) -> None:
        error_class, reason = describe(error)
        not_the_files_fault = isinstance(error, ShareUnavailable)
        # A share that is gone waits whatever the retry budget: nothing was tried on the file.
        if not_the_files_fault or (self._is_retryable(error) and entry.attempts < self._retry().max_attempts):
            delay = self._backoff(entry.attempts)
            self._journal.retry_later(
                entry.id, error_class, reason, time.time() + delay, count_attempt=not not_the_files_fault
            )
            log.warning(
                "retry",
                folder=folder.name,
                path=entry.path,
                error_class=error_class,
                reason=reason,
                attempt=entry.attempts,
                delay=round(delay, 1),
            )
            return
        if self._is_retryable(error):
            reason = f"gave up after {entry.attempts} attempts: {reason}"
        try:
            report: str | None = str(
                record_failure(
                    folder, folder.input / entry.path, error_class, reason, attempts=entry.attempts
                )
            )
        except ShareUnavailable as exc:
            # The error folder's share is gone: the file waits (uncounted) and fails again, with
            # its record, once the share is back, rather than failing with no record.
            due = time.time() + self._backoff(entry.attempts)
            self._journal.retry_later(entry.id, error_class, reason, due, count_attempt=False)
            log.warning("error_record_waits", folder=folder.name, path=entry.path, reason=str(exc))
            return
        except (OSError, HotmatteError) as exc:  # a link below error_dir, disk full...
            report = None
            # The journal keeps why no record exists (e.g. "out-errors/evil: symbolic link not followed").
            reason = f"{reason}; no error record was written: {exc}"
            log.error("error_record_failed", folder=folder.name, path=entry.path, error=str(exc))
        self._journal.mark_failed(entry.id, error_class, reason)
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

    def _backoff(self, attempts: int) -> float:
        retry = self._retry()
        return float(min(retry.backoff_seconds * 2 ** max(attempts - 1, 0), retry.backoff_max_seconds))
