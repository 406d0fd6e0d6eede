"""One-shot processing (``hotmatte process``): inputs → mirrored outputs, with progress and a summary."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TextIO

from daemon.config import DEFAULT_EXCLUDES
from daemon.errors import HotmatteError
from daemon.naming import DEFAULT_OUTPUT_NAME, output_relative
from daemon.outputs import Destination
from daemon.pipeline import Job, Outcome, Pipeline
from daemon.watch import GlobFilter

#: The daemon's built-in excludes, matched as the daemon matches them (ignoring case: THUMBS.DB).
_EXCLUDED = GlobFilter(DEFAULT_EXCLUDES)


def is_excluded(name: str) -> bool:
    return _EXCLUDED(PurePath(name))


def walk_inputs(inputs: Iterable[Path]) -> Iterator[tuple[Path, Path]]:
    """``(file, root)`` for every file given or found below a given folder, sorted.

    ``root`` is the folder the file's output path mirrors from: the given folder, or a
    given file's own folder.
    """
    for given in inputs:
        if given.is_dir():
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames[:] = sorted(d for d in dirnames if not is_excluded(d))
                for name in sorted(filenames):
                    if not is_excluded(name):
                        yield Path(dirpath) / name, given
        else:
            yield given, given.parent


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def plan_jobs(
    inputs: Iterable[Path],
    output_root: Path,
    profile: str,
    output_format: str,
    output_name: str = DEFAULT_OUTPUT_NAME,
) -> Plan:
    """One job per input; a second input that would land on the same output is refused, never overwritten.

    ``output_name`` is the file name template (daemon/naming.py), already checked.
    """
    plan = Plan()
    claimed: dict[Path, Path] = {}
    for source, root in walk_inputs(inputs):
        if not source.exists():
            plan.refused.append((source, "no such file or directory"))
            continue
        relative = source.relative_to(root).as_posix()
        name = output_relative(output_name, relative, profile, output_format)
        destination = Destination(output_root, name)
        if destination.path in claimed:
            plan.refused.append(
                (source, f"its output {destination} is already the output of {claimed[destination.path]}")
            )
            continue
        claimed[destination.path] = source
        plan.jobs.append(Job(source=source, destination=destination, profile=profile))
    return plan


def describe_error(error: BaseException) -> str:
    if isinstance(error, HotmatteError):
        return f"{type(error).__name__}: {error}"
    # Not one of ours: a bug. The class name tells a developer where to look.
    return f"unexpected {type(error).__name__}: {error}"


class Progress:
    """A one-line progress bar on a terminal; one line per failure either way."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.stream = total, stream
        self.done = self.failed = 0
        self.started = time.monotonic()
        self.tty = stream.isatty()

    def update(self, outcome: Outcome) -> None:
        self.done += 1
        if outcome.error is not None:
            self.failed += 1
            self._clear()
            print(f"FAILED {outcome.job.source}: {describe_error(outcome.error)}", file=self.stream)
        self._draw()

    def _clear(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K")

    def _draw(self) -> None:
        if not self.tty:
            return
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = int(30 * self.done / max(1, self.total))
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}  "
            f"{self.failed} failed  {rate:.2f} files/s  ETA {eta:.0f}s"
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")


def run_batch(pipeline: Pipeline, plan: Plan, stream: TextIO = sys.stderr) -> int:
    """Process ``plan``; print failures and a summary; return the exit code (0 all ok, 1 any failed)."""
    progress = Progress(len(plan.jobs) + len(plan.refused), stream)
    for source, reason in plan.refused:
        progress.done += 1
        progress.failed += 1
        print(f"FAILED {source}: {reason}", file=stream)
    pipeline.on_outcome = progress.update
    pipeline.start()
    for job in plan.jobs:
        pipeline.submit(job)
    pipeline.wait_idle()
    pipeline.stop(drain_timeout=0)
    progress.finish()
    elapsed = time.monotonic() - progress.started
    ok = progress.done - progress.failed
    print(
        f"{progress.done} files: {ok} done, {progress.failed} failed in {elapsed:.1f} s "
        f"({ok / elapsed if elapsed else 0:.2f} files/s)",
        file=stream,
    )
    if ok:
        print("\n".join(pipeline.stage_report().format_lines()), file=stream)
    return 1 if progress.failed else 0
