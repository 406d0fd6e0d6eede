"""What becomes of an original once the daemon is through with it.

A file that failed for good is *copied* (never moved: the original stays where
the photographer put it) into the folder's ``error_dir``, mirrored, with a
``<name>.error.json`` beside it saying why. A file that succeeded is moved into
``done_dir`` only when the folder says ``on_success: move``. Every write here
goes through :func:`daemon.finish.outputs.write_atomically`, so a crash never leaves a
half-copied original that looks whole, and nothing is written through a link
planted below those folders.

The original is read through :func:`daemon.beneath.open_regular_file` (never through a link);
a failure that *is* a link or a special file gets its ``.error.json`` and no copy at all.
Copies and records are new files (0666 less the service's umask): an original's mode is never
copied. The record names the file by its path relative to the hot folder, and the folder's
name, never by a server path.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from daemon.beneath import open_directory, open_regular_file, open_regular_file_in, parts_of
from daemon.config import Folder
from daemon.errors import HotmatteError, NotARegularFile, OutputNameTooLong, SymlinkNotFollowed
from daemon.finish.outputs import (
    NAME_MAX,
    Destination,
    open_parent,
    write_atomically,
    write_text_atomically,
)
from daemon.journal.names import printable

ERROR_SUFFIX = ".error.json"
#: Failures whose original is never opened, so never copied: only the record is written.
NOT_COPIED = frozenset({SymlinkNotFollowed.__name__, NotARegularFile.__name__})
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class FailureRecord:
    """The contents of ``<name>.error.json``. ``source`` is relative to the folder's input."""

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


def _copy_from(fd: int) -> Callable[[Path], None]:
    """A writer copying the open original ``fd`` (its bytes and modification time, not its mode)."""

    def copy(tmp: Path) -> None:
        st = os.fstat(fd)
        os.lseek(fd, 0, os.SEEK_SET)
        with open(tmp, "wb") as out:
            while chunk := os.read(fd, _COPY_CHUNK):
                out.write(chunk)
            os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))

    return copy


def _relative(folder: Folder, source: Path) -> PurePosixPath:
    return PurePosixPath(source.relative_to(folder.input).as_posix())


def error_copy_path(folder: Folder, source: Path) -> Path:
    return folder.resolved_error_dir / source.relative_to(folder.input)


def record_name(name: str) -> str:
    """``<name>.error.json``, shortened (with a hash of the full name) when that would not fit."""
    full = name + ERROR_SUFFIX
    if len(os.fsencode(full)) <= NAME_MAX:
        return full
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    keep = os.fsencode(name)[: NAME_MAX - len(ERROR_SUFFIX) - len(digest) - 1]
    for cut in range(4):  # end on a whole UTF-8 character where the name is UTF-8
        try:
            keep[: len(keep) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        keep = keep[: len(keep) - cut]
        break
    return f"{os.fsdecode(keep)}~{digest}{ERROR_SUFFIX}"


def _copy_original(folder: Folder, relative: PurePosixPath, copy: Destination) -> str | None:
    """Copy the original into the error folder; a note for the record when it could not be."""
    try:
        fd = open_regular_file(folder.input, relative)
    except FileNotFoundError:
        return "the original could no longer be read, so no copy is kept here"
    except (SymlinkNotFollowed, NotARegularFile) as exc:
        return f"no copy is kept here: {exc}"
    except OSError as exc:
        why = os.strerror(exc.errno or errno.EIO)
        return f"the original could not be read ({why}), so no copy is kept here"
    try:
        write_atomically(copy, _copy_from(fd))
    except OutputNameTooLong as exc:
        return f"no copy is kept here: {exc}"
    finally:
        os.close(fd)
    return None


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
    still written and says so, so the failure is never silent. Raises what the *write* raised:
    :class:`SymlinkNotFollowed` for a link below ``error_dir``, ``ShareUnavailable``,
    ``DiskFull`` or ``OSError``.
    """
    relative = _relative(folder, source)
    copy = Destination(folder.resolved_error_dir, relative)
    note = None if error_class in NOT_COPIED else _copy_original(folder, relative, copy)
    if note:
        reason = f"{reason} ({note})"
    record = FailureRecord(
        folder=folder.name,
        source=relative.as_posix(),
        reason=reason,
        error_class=error_class,
        timestamp=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        attempts=attempts,
        permanent=permanent,
    )
    # A name that is not UTF-8 (caf\xe9.jpg) is written with \xNN escapes: the JSON stays UTF-8.
    fields = {k: printable(v) if isinstance(v, str) else v for k, v in asdict(record).items()}
    text = json.dumps(fields, indent=2, ensure_ascii=False) + "\n"
    return write_text_atomically(copy.with_name(record_name(copy.name)), text)


def read_failure(report: Path) -> FailureRecord:
    return FailureRecord(**json.loads(report.read_text(encoding="utf-8")))


def _free_name(dir_fd: int, name: str) -> str:
    """``name``, or ``stem (1).ext``, ``stem (2).ext``... whichever is not taken in ``dir_fd``.

    A link counts as taken (``lstat``): it is never replaced or followed.
    """
    path = PurePosixPath(name)
    candidate, n = name, 0
    while True:
        try:
            os.stat(candidate, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return candidate
        n += 1
        candidate = f"{path.stem} ({n}){path.suffix}"


def move_to_done(folder: Folder, source: Path, processed: tuple[int, int] | None = None) -> Path | None:
    """Move a processed original into ``done_dir`` (mirrored) and return where it went.

    ``processed`` is the (size, mtime_ns) of the version that was processed: if the file at the
    name is another version now (re-exported meanwhile), it is left for the watcher and ``None``
    is returned, so a version nobody processed is never moved away.
    An earlier original of the same name is never overwritten: the newcomer gets a numbered name.
    Both folders are opened without following links. Across filesystems the copy is completed
    and fsynced before the original is removed.
    """
    relative = _relative(folder, source)
    parts = parts_of(relative)
    target_dir = open_parent(Destination(folder.resolved_done_dir, relative))
    try:
        source_dir = open_directory(folder.input, parts[:-1])
        try:
            if processed is not None:
                st = os.stat(parts[-1], dir_fd=source_dir, follow_symlinks=False)
                if (st.st_size, st.st_mtime_ns) != processed:
                    return None
            name = _free_name(target_dir, parts[-1])
            try:
                os.rename(parts[-1], name, src_dir_fd=source_dir, dst_dir_fd=target_dir)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_then_remove(folder, relative.with_name(name), source_dir, parts[-1])
            else:
                os.fsync(target_dir)
        finally:
            os.close(source_dir)
    finally:
        os.close(target_dir)
    return folder.resolved_done_dir / relative.with_name(name)


def _copy_then_remove(folder: Folder, done_relative: PurePosixPath, source_dir: int, name: str) -> None:
    fd = open_regular_file_in(source_dir, name, printable(name))
    try:
        write_atomically(Destination(folder.resolved_done_dir, done_relative), _copy_from(fd))
    finally:
        os.close(fd)
    os.unlink(name, dir_fd=source_dir)
