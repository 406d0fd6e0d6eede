"""What becomes of an original once the daemon is through with it.

A file that failed for good is *copied* (never moved: the original stays where
the photographer put it) into the folder's ``error_dir``, mirrored, with a
``<name>.error.json`` beside it saying why. A file that succeeded is moved into
``done_dir`` only when the folder says ``on_success: move``. Every write here
goes through :func:`daemon.outputs.write_atomically`, so a crash never leaves a
half-copied original that looks whole.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.config import Folder
from daemon.errors import HotmatteError
from daemon.names import printable
from daemon.outputs import write_atomically, write_text_atomically

ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class FailureRecord:
    """The contents of ``<name>.error.json``."""

    folder: str
    source: str
    reason: str
    error_class: str
    timestamp: str
    attempts: int
    permanent: bool


def describe(error: BaseException) -> tuple[str, str]:
    """(exception class name, a reason a person can read) for any error a stage raised."""
    reason = str(error).strip() or type(error).__name__
    if not isinstance(error, HotmatteError):
        # Not one of ours: a bug. Say so, so nobody mistakes it for a problem with the photo.
        reason = f"internal error ({type(error).__name__}): {reason}"
    return type(error).__name__, reason


def _copy_of(source: Path) -> Callable[[Path], None]:
    def copy(tmp: Path) -> None:
        shutil.copy2(source, tmp)

    return copy


def error_copy_path(folder: Folder, source: Path) -> Path:
    return folder.resolved_error_dir / source.relative_to(folder.input)


def record_failure(
    folder: Folder,
    source: Path,
    error_class: str,
    reason: str,
    *,
    attempts: int,
    permanent: bool = True,
    now: datetime | None = None,
) -> Path:
    """Copy ``source`` into ``error_dir`` and write its ``.error.json``; return the JSON's path.

    If the original cannot be read any more (it vanished, or the share is gone), the JSON is
    still written and says so, so the failure is never silent.
    """
    copy = error_copy_path(folder, source)
    try:
        write_atomically(copy, _copy_of(source))
    except FileNotFoundError:
        reason = f"{reason} (the original could no longer be read, so no copy is kept here)"
    record = FailureRecord(
        folder=folder.name,
        source=str(source),
        reason=reason,
        error_class=error_class,
        timestamp=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        attempts=attempts,
        permanent=permanent,
    )
    # A name that is not UTF-8 (caf\xe9.jpg) is written with \xNN escapes: the JSON stays UTF-8.
    fields = {k: printable(v) if isinstance(v, str) else v for k, v in asdict(record).items()}
    text = json.dumps(fields, indent=2, ensure_ascii=False) + "\n"
    report = copy.with_name(copy.name + ERROR_SUFFIX)
    write_text_atomically(report, text)
    return report


def read_failure(report: Path) -> FailureRecord:
    return FailureRecord(**json.loads(report.read_text(encoding="utf-8")))


def _free_name(path: Path) -> Path:
    """``path``, or ``name (1).ext``, ``name (2).ext``... whichever does not exist yet."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def move_to_done(folder: Folder, source: Path) -> Path:
    """Move a processed original into ``done_dir`` (mirrored) and return where it went.

    An earlier original of the same name is never overwritten: the newcomer gets a numbered name.
    Across filesystems the copy is completed and fsynced before the original is removed.
    """
    destination = _free_name(folder.resolved_done_dir / source.relative_to(folder.input))
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomically(destination, _copy_of(source))
        source.unlink()
    return destination
