"""Where results go, and how they get there without a reader ever seeing half a file.

Every output is written to a hidden temporary name in its final directory,
fsynced, then renamed over the final name with ``os.replace`` (atomic on POSIX
within one filesystem), and the directory is fsynced so the rename survives a
power cut. Temporaries left by a crash carry :data:`TEMP_MARKER` and are
removed by :func:`remove_stale_temporaries` at start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon.errors import DiskFull, TransientError

TEMP_MARKER = ".hotmatte-tmp-"
EXTENSIONS = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}


def mirrored_path(source: Path, input_root: Path, output_root: Path, output_format: str) -> Path:
    """``output_root/<source relative to input_root>`` with the format's extension."""
    relative = source.relative_to(input_root)
    return (output_root / relative).with_suffix(EXTENSIONS[output_format])


def temporary_path_for(destination: Path) -> Path:
    # Leading dot: hidden from users and excluded by every hot folder's default globs.
    # Keeping the real extension lets writers that pick a codec by suffix still work.
    return destination.with_name(
        f".{destination.stem}{TEMP_MARKER}{uuid.uuid4().hex[:8]}{destination.suffix}"
    )


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_transient(exc: OSError, destination: Path) -> OSError | TransientError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left writing {destination}")
    return exc


def write_atomically(destination: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, then publish ``tmp_path`` as ``destination``.

    On any failure the temporary is removed and nothing appears at
    ``destination``; an existing file there is untouched until the rename.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path_for(destination)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, destination)
    except OSError as exc:
        _discard(tmp)
        raise _as_transient(exc, destination) from exc
    except BaseException:
        _discard(tmp)
        raise
    _fsync_directory(destination.parent)
    return destination


def write_text_atomically(destination: Path, text: str) -> Path:
    """:func:`write_atomically` for a UTF-8 text file (error records, manifests, reports)."""
    return write_atomically(destination, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def iter_stale_temporaries(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if TEMP_MARKER in name:
                yield Path(dirpath) / name


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete temporaries a crash left under ``root``; return what was removed.

    Only call this when no writer is running on ``root``.
    """
    removed = []
    for path in iter_stale_temporaries(root):
        _discard(path)
        removed.append(path)
    return removed
