"""One-shot processing (``hotmatte process``): inputs → mirrored outputs, with progress and a summary."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import NamedTuple, TextIO

from daemon.config import DEFAULT_EXCLUDES
from daemon.errors import HotmatteError
from daemon.finish.naming import DEFAULT_OUTPUT_NAME, output_relative
from daemon.finish.outputs import Destination
from daemon.pipeline.stages import Job, Outcome, Pipeline
from daemon.watch.filters import GlobFilter

#: The daemon's built-in excludes, matched as the daemon matches them (ignoring case: THUMBS.DB).
_EXCLUDED = GlobFilter(DEFAULT_EXCLUDES)


def is_excluded(name: str) -> bool:
    return _EXCLUDED(PurePath(name))


class Input(NamedTuple):
    """One input of ``hotmatte process``."""

    path: Path
    #: The folder the output path mirrors from: the given folder, or a given file's own folder.
    root: Path
    #: Found by walking a given folder (then never followed if it is a link), not named by hand.
    walked: bool


def walk_inputs(inputs: Iterable[Path]) -> Iterator[Input]:
    """Every file given, or found below a given folder (sorted), as an :class:`Input`.

    Walks never follow links: a link (to a file or a folder), a FIFO, a socket or a device found
    in a folder is listed like a file, so that it fails with its reason instead of being read
    (or hanging the run, as opening a FIFO would). A file named on the command line is the
    operator's choice and is taken as given, links included.
    """
    for given in inputs:
        if given.is_dir():
            yield from _walk(given, given)
        else:
            yield Input(given, given.parent, walked=False)


def _walk(directory: Path, root: Path) -> Iterator[Input]:
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    folders = []
    for entry in entries:
        if is_excluded(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry)
        else:
            yield Input(Path(entry.path), root, walked=True)
    for entry in folders:
        yield from _walk(Path(entry.path), root)


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

    ``output_name`` is the file name template (daemon/finish/naming.py), already checked.
    """
    plan = Plan()
    claimed: dict[Path, Path] = {}
    for source, root, walked in walk_inputs(inputs):
        if not (os.path.lexists(source) if walked else source.exists()):
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
        if walked:  # opened below the given folder, no link followed (see Job.source_root)
            job = Job(source=source, destination=destination, profile=profile, source_root=root)
        else:  # named by hand: its own links are followed, its output keeps the name given
            job = Job(source=source.resolve(), destination=destination, profile=profile)
        plan.jobs.append(job)
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
