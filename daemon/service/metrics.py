"""The service's Prometheus metrics, served by the console at ``/metrics`` (README "Metrics").

Here, in ``daemon/service`` rather than ``daemon/console``, because everything measured belongs
to the service (its outcomes, pipeline timings, watchers, engine) and the console must never
call into the service: the service owns one :class:`ServiceMetrics` and hands its registry to
the console, which only serves it. Each service has its own registry (never prometheus_client's
global one), so tests running several daemons and a reload that rebuilds nothing stay clean.

Two ways values get in:

* pushed by the loop's thread as things happen: outcomes (from
  :class:`~daemon.service.outcomes.OutcomeRecorder`, at each journal transition), stage timings
  (``Service._conclude``), and a plain snapshot of folder facts published every couple of
  seconds, replaced whole so a scrape never sees half of one;
* read at scrape time by custom collectors, on the console's thread: the journal's counts per
  folder and state through a connection of their own (two ``GROUP BY`` queries, a few
  milliseconds on 10,000 rows, instead of keeping counters that could drift from the journal):
  the SQLite journal read-only, or in cluster mode a reader of the shared database that gives up
  within a second when the server is away (:func:`daemon.journal.opening.open_counter`), so a
  scrape then leaves the queue out rather than hang,
  and the free bytes of each folder's roots (``statvfs``; only for roots that were reachable at
  the last snapshot, so an unmounted share cannot hang a scrape).

No label value is ever a file path: folder names (``^[A-Za-z0-9_.-]+$`` by config), states,
outcomes, stage names, error class names and root kinds only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from daemon.config import Folder
from daemon.errors import HotmatteError
from daemon.finish.roots import roots_of
from daemon.journal.backend import JournalBackend
from daemon.journal.store import STATES, Journal

log = structlog.get_logger("hotmatte")

Outcome = Literal["done", "review", "retry", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("done", "review", "retry", "failed")
#: Opens the connection the queue counts are read through (called again after one failed).
JournalOpener = Callable[[], JournalBackend]
#: Queue states: the journal's, with ``review`` (done, result in review_dir) apart from ``done``.
QUEUE_STATES = (*STATES, "review")

#: One stage of one file: a small PNG decodes in milliseconds, a 100 MP PSD takes tens of seconds.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: Drop to output: a second on an idle GPU, hours behind a backlog or a share that was away.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


@dataclass(frozen=True)
class FolderFacts:
    """What the loop knows of one folder, published for scrapes (plain data, any thread)."""

    #: The folder's watcher thread (and its observer, while the share is there) runs.
    up: bool
    #: The input and every root it writes to (output, errors, review, done) can be reached.
    reachable: bool
    waiting_for_space: bool
    #: Root kind (output, error, review, done) → directory, for free space at scrape time.
    roots: Mapping[str, Path] = field(default_factory=dict)


def root_kinds(folder: Folder) -> dict[str, Path]:
    """``roots_of(folder)`` by kind: the label a root gets (its path never is one)."""
    kinds = {
        folder.output: "output",
        folder.resolved_error_dir: "error",
        folder.resolved_review_dir: "review",
        folder.resolved_done_dir: "done",
    }
    return {kinds[root]: root for root in roots_of(folder)}


def landed_at(path: Path) -> float | None:
    """When ``path`` last arrived or changed in its hot folder (wall clock), None if unknown.

    Its ``ctime``: copying or moving a file in sets it to that moment, even when the copy keeps
    an old ``mtime`` (``cp -p``, rsync), and reading never changes it. The later of the two, in
    case a filesystem reports no ``ctime`` worth having.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return max(st.st_mtime, st.st_ctime)


class _JournalCounts(Collector):
    """``hotmatte_queue_files``: the journal's rows per folder and state, read at scrape time."""

    def __init__(self, open_journal: JournalOpener, folders: Callable[[], Iterable[str]]) -> None:
        self._open = open_journal
        #: The folders being watched: shown at 0 before their first file.
        self._folders = folders
        self._journal: JournalBackend | None = None

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "hotmatte_queue_files",
            "Files in the journal per folder and state (done excludes those in review).",
            labels=["folder", "state"],
        )

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            if self._journal is None:  # its own connection: never the service's, never its lock
                self._journal = self._open()
            counts, review = self._journal.counts(), self._journal.in_review()
        # A scrape never fails for it: SQLite's or PostgreSQL's own errors, a journal found unusable,
        # a cluster database that does not answer (DatabaseUnavailable).
        except (sqlite3.Error, psycopg.Error, HotmatteError) as exc:
            log.warning("metrics_journal_unreadable", error=str(exc))
            self.close()
            return [family]
        for folder in sorted({*counts, *self._folders()}):
            per = dict(counts.get(folder, dict.fromkeys(STATES, 0)))
            in_review = review.get(folder, 0)
            per["done"] -= in_review
            for state in STATES:
                family.add_metric([folder, state], per[state])
            family.add_metric([folder, "review"], in_review)
        return [family]

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None


class _FolderFactsCollector(Collector):
    """Folder up, share reachable, waiting for space, root free bytes and files in flight."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        gauges: tuple[tuple[str, str, str, list[str]], ...] = (
            ("up", "hotmatte_folder_up", "1 while the folder's watcher runs.", ["folder"]),
            (
                "reachable",
                "hotmatte_share_reachable",
                "1 while the folder's input and every root it writes to can be reached.",
                ["folder"],
            ),
            (
                "space",
                "hotmatte_folder_waiting_for_space",
                "1 while the folder waits for disk space (nothing is claimed from it but a probe).",
                ["folder"],
            ),
            (
                "free",
                "hotmatte_root_free_bytes",
                "Bytes free (to the service's user) on each root a folder writes to.",
                ["folder", "root"],
            ),
            ("in_flight", "hotmatte_in_flight_files", "Files in the pipeline now.", []),
        )
        return {key: GaugeMetricFamily(name, text, labels=labels) for key, name, text, labels in gauges}

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        facts, in_flight = self._metrics.published
        for name in sorted(facts):
            fact = facts[name]
            families["up"].add_metric([name], float(fact.up))
            families["reachable"].add_metric([name], float(fact.reachable))
            families["space"].add_metric([name], float(fact.waiting_for_space))
            if not fact.reachable:
                continue  # statvfs on an unmounted network share can block
            for kind, root in fact.roots.items():
                # Not made yet, or gone since the snapshot: no sample.
                with contextlib.suppress(OSError):
                    families["free"].add_metric([name, kind], float(shutil.disk_usage(root).free))
        families["in_flight"].add_metric([], float(in_flight))
        return list(families.values())


class ServiceMetrics:
    """All metrics of one service, in a registry of its own (:attr:`registry`)."""

    def __init__(self, journal: Path | JournalOpener) -> None:
        """``journal``: how to open the connection the queue counts are read through; a path is
        the SQLite journal there, opened read-only."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._processed = Counter(
            "hotmatte_files_processed",
            "Files that came out of the pipeline, by what the journal recorded: done, review"
            " (done, result in review_dir), retry (back to pending for a later try), failed (for good).",
            ["folder", "outcome"],
            registry=r,
        )
        self._failures = Counter(
            "hotmatte_failures",
            "Failed tries by error class, retried ones included (one file may count several times).",
            ["folder", "error_class"],
            registry=r,
        )
        self._stages = Histogram(
            "hotmatte_stage_duration_seconds",
            "Time one file spent in a pipeline stage (model: its share of the batch).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self._latency = Histogram(
            "hotmatte_drop_to_output_seconds",
            "From a file landing in the hot folder (its ctime) to its result being recorded.",
            ["folder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._last_success = Gauge(
            "hotmatte_last_success_timestamp_seconds",
            "Unix time of the folder's latest result (done or review).",
            ["folder"],
            registry=r,
        )
        self._model = Info("hotmatte_model", "The model the pipeline runs, and where.", registry=r)
        opener = (lambda: Journal.open_read_only(journal)) if isinstance(journal, Path) else journal
        self._journal_counts = _JournalCounts(opener, lambda: self.published[0])
        r.register(self._journal_counts)
        #: (facts per folder, files in flight): replaced whole by :meth:`publish`.
        self.published: tuple[Mapping[str, FolderFacts], int] = ({}, 0)
        r.register(_FolderFactsCollector(self))

    # --- pushed by the loop -----------------------------------------------------------------------

    def folder_started(self, folder: str) -> None:
        """Show the folder's counters at 0 from the start, so ``rate()`` sees their first file."""
        for outcome in OUTCOMES:
            self._processed.labels(folder, outcome)
        self._latency.labels(folder)

    def model(self, device: str, model_size: int, precision: str) -> None:
        self._model.info({"device": device, "model_size": str(model_size), "precision": precision})

    def stage_timings(self, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            self._stages.labels(stage).observe(seconds)

    def outcome(
        self,
        folder: str,
        outcome: Outcome,
        *,
        error_class: str | None = None,
        landed: float | None = None,
        now: float | None = None,
    ) -> None:
        """One journal transition of a file that was tried (``landed``: see :func:`landed_at`)."""
        self._processed.labels(folder, outcome).inc()
        if error_class is not None:
            self._failures.labels(folder, error_class).inc()
        if outcome in ("done", "review"):
            finished = time.time() if now is None else now
            self._last_success.labels(folder).set(finished)
            if landed is not None:
                self._latency.labels(folder).observe(max(0.0, finished - landed))

    def publish(self, facts: Mapping[str, FolderFacts], in_flight: int) -> None:
        """The loop's latest facts (one assignment: a scrape sees this snapshot or the last)."""
        self.published = (dict(facts), in_flight)

    def close(self) -> None:
        self._journal_counts.close()
