"""Where results go, and how they get there without a reader ever seeing half a file.

Every write names its *root* (an output, error, review or done folder from the config, trusted)
and a path relative to it (:class:`Destination`). Below the root, studio users can make folders
and plant links, so nothing there is trusted:

- each folder on the way is opened (or made) with ``O_NOFOLLOW`` relative to its parent
  (:func:`daemon.beneath.open_directory`); a link there is
  :class:`~daemon.errors.SymlinkNotFollowed` and nothing is written through it;
- the temporary is created ``O_CREAT|O_EXCL|O_NOFOLLOW`` in that folder's descriptor, under a
  short fixed-length hidden name (:data:`TEMP_MARKER` + 16 hex digits, so any name that fits the
  filesystem gets a temporary that fits too); the writer gets ``/proc/self/fd/N`` of *that file*,
  so swapping the name for a link meanwhile redirects nothing;
- the file is fsynced, renamed over the final name relative to the same descriptor (a link at
  the final name is replaced, its target untouched), and the folder is fsynced so the rename
  survives a power cut;
- before anything is written, the root is checked to be the one remembered at start
  (:mod:`daemon.finish.roots`): an unmounted share is :class:`~daemon.errors.ShareUnavailable`.

Permissions: files are created with mode 0666 and folders 0777, less the service's umask
(``UMask=0002`` in the unit: 0664 and 2775 under a setgid studio folder). Nothing copies the
mode of an original, so an error copy of a 0444 or 0755 original is an ordinary 0664 file.

Temporaries left by a crash carry :data:`TEMP_MARKER` and are removed by
:func:`remove_stale_temporaries` at start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from daemon.beneath import fd_path, open_directory, open_root, parts_of
from daemon.errors import DiskFull, OutputNameTooLong, ShareUnavailable, SymlinkNotFollowed, TransientError
from daemon.finish.roots import REGISTRY, check_root
from daemon.journal.names import printable

TEMP_MARKER = ".hotmatte-tmp-"
EXTENSIONS = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}
#: The longest file name (in bytes) of Linux's filesystems and of SMB/NFS shares.
NAME_MAX = 255
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Destination:
    """A file ``relative`` below a trusted ``root``; nothing below ``root`` is trusted."""

    root: Path
    relative: PurePosixPath

    @classmethod
    def at(cls, path: Path) -> Destination:
        """``path`` as a file directly in its folder (the folder is the root: for one-off writes)."""
        return cls(path.parent, PurePosixPath(path.name))

    @property
    def path(self) -> Path:
        return self.root / self.relative

    @property
    def name(self) -> str:
        return self.relative.name

    @property
    def suffix(self) -> str:
        return self.relative.suffix

    def with_name(self, name: str) -> Destination:
        return Destination(self.root, self.relative.with_name(name))

    def __str__(self) -> str:
        return str(self.path)


def mirrored_path(source: Path, input_root: Path, output_root: Path, output_format: str) -> Path:
    """``output_root/<source relative to input_root>`` with the format's extension."""
    return (output_root / source.relative_to(input_root)).with_suffix(EXTENSIONS[output_format])


def check_name_fits(name: str, what: str = "result") -> None:
    """Raise :class:`OutputNameTooLong` unless ``name`` can exist on a filesystem."""
    size = len(os.fsencode(name))
    if size > NAME_MAX:
        shown = printable(name)
        raise OutputNameTooLong(
            f"the {what}'s name would be {size} bytes long ({shown[:40]}…{shown[-16:]}), "
            f"more than the {NAME_MAX} a file system allows; give the original a shorter name"
        )


def _as_transient(exc: OSError, destination: Destination) -> OSError | TransientError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"no space left writing {printable(destination.path)}")
    return exc


def open_parent(destination: Destination) -> int:
    """A descriptor of ``destination``'s folder, made as needed, never through a link.

    The root must be reachable (and, when the daemon remembered it, the same share as at start);
    a root nobody remembered (``hotmatte process -o DIR``) is made when missing.
    """
    check_root(destination.root)
    parts = parts_of(destination.relative)
    if not parts:
        raise ValueError(f"{destination.relative!r} names no file")
    if not REGISTRY.is_remembered(destination.root):
        destination.root.mkdir(parents=True, exist_ok=True)
    try:
        return open_directory(destination.root, parts[:-1], create=True)
    except SymlinkNotFollowed as exc:
        raise SymlinkNotFollowed(
            f"{printable(destination.root.name)}/{exc}; nothing was written through it"
        ) from exc
    except FileNotFoundError as exc:
        if not destination.root.is_dir():  # the root went away between the check and the open
            raise ShareUnavailable(f"{destination.root} is gone; nothing is written there") from exc
        raise
    except OSError as exc:
        raise _as_transient(exc, destination) from exc


def write_atomically(destination: Destination, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, then publish the file as ``destination``; return its path.

    ``tmp_path`` (``/proc/self/fd/N``) opens exactly the new temporary; writers must not derive
    anything (a codec) from its name. On any failure the temporary is removed and nothing
    appears at ``destination``; an existing file there is untouched until the rename.
    """
    name = parts_of(destination.relative)[-1]
    check_name_fits(name)
    dir_fd = open_parent(destination)
    try:
        tmp_name = f"{TEMP_MARKER}{secrets.token_hex(8)}"
        try:
            tmp_fd = os.open(tmp_name, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
        except OSError as exc:
            raise _as_transient(exc, destination) from exc
        try:
            write(fd_path(tmp_fd))
            os.fsync(tmp_fd)
            os.replace(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            _discard(dir_fd, tmp_name)
            raise _as_transient(exc, destination) from exc
        except BaseException:
            _discard(dir_fd, tmp_name)
            raise
        finally:
            os.close(tmp_fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return destination.path


def write_text_atomically(destination: Destination, text: str) -> Path:
    """:func:`write_atomically` for a UTF-8 text file (error records, manifests, reports)."""
    return write_atomically(destination, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _discard(dir_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def remove_stale_temporaries(root: Path, older_than: float | None = None) -> list[Path]:
    """Delete temporaries a crash left under ``root``; return what was removed.

    ``older_than`` (seconds): only temporaries not modified for that long. Cluster mode passes
    it, because other nodes may be writing below the same root while this one starts.

    The walk works from folder descriptors and never descends into a linked folder, and only
    regular files are deleted (by name in their folder: a link is never deleted through).
    A root that is unavailable (see :mod:`daemon.finish.roots`) is left alone. Only call this when no
    writer is running on ``root``.
    """
    try:
        check_root(root, writing=False)
        root_fd = open_root(root)
    except (ShareUnavailable, FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    cutoff = time.time() - (older_than or 0.0)
    try:
        # "." relative to the root's descriptor: the root itself may be a (trusted) link.
        for dirpath, _dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
            for name in filenames:
                if TEMP_MARKER not in name:
                    continue
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode) and (older_than is None or st.st_mtime < cutoff):
                    _discard(dir_fd, name)
                    removed.append(Path(os.path.normpath(root / dirpath / name)))
    finally:
        os.close(root_fd)
    return removed


__all__ = [
    "EXTENSIONS",
    "NAME_MAX",
    "TEMP_MARKER",
    "Destination",
    "check_name_fits",
    "mirrored_path",
    "remove_stale_temporaries",
    "write_atomically",
    "write_text_atomically",
]
