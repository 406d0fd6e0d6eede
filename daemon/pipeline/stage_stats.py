"""Per-stage timings of the pipeline: how busy each stage is, so a user can see the bottleneck.

The pipeline records every stage run here; :meth:`StageClock.report` takes a snapshot
that the daemon logs and saves beside the journal for ``hotmatte status``, and that
``hotmatte process`` can write out (``$HOTMATTE_STAGE_REPORT``) for the benchmark.

Utilisation is busy time over wall time times the stage's workers: a stage near 100 %
is the one holding the others back; the model stage near 100 % is the ideal.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from daemon.finish.outputs import Destination, write_text_atomically

#: Stage names in pipeline order: every file goes through these.
STAGES = ("decode", "model", "finish")
#: Stages only some files go through (the crop pass of ``detail: crops`` profiles, run by the
#: finish workers before finishing), reported once a file went through them.
OPTIONAL_STAGES = ("detail",)
#: Where each stage is listed: pipeline order.
ORDER = ("decode", "model", "detail", "finish")
RECENT = 50


@dataclass(frozen=True)
class StageSnapshot:
    name: str
    workers: int
    files: int
    busy_seconds: float
    mean_seconds: float
    recent_mean_seconds: float
    utilisation: float
    queued: int


@dataclass(frozen=True)
class StageReport:
    elapsed_seconds: float
    stages: tuple[StageSnapshot, ...]

    @property
    def bottleneck(self) -> str | None:
        """The busiest stage, once any file went through."""
        busy = [s for s in self.stages if s.files]
        return max(busy, key=lambda s: s.utilisation).name if busy else None

    def to_dict(self) -> dict[str, object]:
        return {
            "elapsed_seconds": self.elapsed_seconds,
            "bottleneck": self.bottleneck,
            "stages": [asdict(s) for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> StageReport:
        """Inverse of :meth:`to_dict`; ``ValueError`` when ``data`` is not such a report."""
        stages, elapsed = data.get("stages"), data.get("elapsed_seconds")
        if not isinstance(stages, list) or not isinstance(elapsed, int | float):
            raise ValueError("not a stage report")
        return cls(float(elapsed), tuple(StageSnapshot(**s) for s in stages))

    def format_lines(self) -> list[str]:
        """A small table for ``hotmatte status`` and the end of ``hotmatte process``."""
        lines = [
            f"{'stage':<8}{'workers':>8}{'files':>8}{'mean s':>9}{'recent s':>10}{'busy':>7}{'queued':>8}"
        ]
        for s in self.stages:
            lines.append(
                f"{s.name:<8}{s.workers:>8}{s.files:>8}{s.mean_seconds:>9.3f}"
                f"{s.recent_mean_seconds:>10.3f}{s.utilisation:>7.0%}{s.queued:>8}"
            )
        if self.bottleneck:
            lines.append(f"bottleneck: {self.bottleneck}")
        return lines


class StageClock:
    """Thread-safe running totals per stage."""

    def __init__(self, workers: Mapping[str, int]) -> None:
        self._workers = dict(workers)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._files = dict.fromkeys(ORDER, 0)
        self._busy = dict.fromkeys(ORDER, 0.0)
        self._recent: dict[str, deque[float]] = {stage: deque(maxlen=RECENT) for stage in ORDER}

    def restart(self) -> None:
        with self._lock:
            self._started = time.monotonic()

    def record(self, stage: str, busy_seconds: float, files: int = 1) -> None:
        """One run of ``stage`` that took ``busy_seconds`` for ``files`` files (a model batch has several)."""
        per_file = busy_seconds / max(1, files)
        with self._lock:
            self._files[stage] += files
            self._busy[stage] += busy_seconds
            self._recent[stage].extend([per_file] * files)

    def report(self, queued: Mapping[str, int] | None = None) -> StageReport:
        queued = queued or {}
        with self._lock:
            elapsed = max(time.monotonic() - self._started, 1e-9)
            shown = [stage for stage in ORDER if stage in STAGES or self._files[stage]]
            return StageReport(elapsed, tuple(self._snapshot(stage, elapsed, queued) for stage in shown))

    def _snapshot(self, stage: str, elapsed: float, queued: Mapping[str, int]) -> StageSnapshot:
        files, recent = self._files[stage], self._recent[stage]
        workers = self._workers.get(stage, 1)
        return StageSnapshot(
            name=stage,
            workers=workers,
            files=files,
            busy_seconds=round(self._busy[stage], 3),
            mean_seconds=round(self._busy[stage] / files, 4) if files else 0.0,
            recent_mean_seconds=round(sum(recent) / len(recent), 4) if recent else 0.0,
            utilisation=round(min(1.0, self._busy[stage] / (elapsed * workers)), 3),
            queued=queued.get(stage, 0),
        )


def save_report(report: StageReport, path: Path) -> None:
    """Write ``report`` as JSON, atomically (a reader never sees half of it)."""
    text = json.dumps(report.to_dict(), indent=1)
    write_text_atomically(Destination.at(path), text)


def load_report(path: Path) -> StageReport | None:
    """The report saved at ``path``; ``None`` when there is none or it cannot be read."""
    try:
        return StageReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def report_path_for(journal: Path) -> Path:
    """Where the daemon keeps its latest stage report: beside its journal."""
    return journal.with_name(journal.name + ".stages.json")
