"""Opening folders and files *beneath* a trusted root without ever following a symbolic link.

The roots (a folder's ``input``, ``output``, ``error_dir``, ``review_dir``, ``done_dir``) come
from the config, which an administrator wrote: they are trusted, and may themselves be links
(``/srv/studio -> /mnt/nas``). Everything below a root is made by studio users, who can plant
``out-errors/evil -> /home/hotmatte/.ssh``. So every component below a root is opened with
``O_NOFOLLOW`` relative to its parent's descriptor, and the caller works from the descriptor it
gets back: a component swapped for a link after a check cannot redirect the read or the write.

Python has no binding for Linux's ``openat2(RESOLVE_NO_SYMLINKS)``; walking the components with
``openat`` (``os.open(..., dir_fd=)``) gives the same guarantee with the standard library alone.

A link found on the way raises :class:`~daemon.errors.SymlinkNotFollowed`; a FIFO, socket or
device where a file was expected raises :class:`~daemon.errors.NotARegularFile`. Nothing is read
from or written through either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from daemon.errors import NotARegularFile, SymlinkNotFollowed

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def parts_of(relative: str | PurePosixPath | Path) -> list[str]:
    """The components of a relative path; ``..``, absolute paths and empty names are refused."""
    text = os.fspath(relative)
    if os.path.isabs(text):
        raise ValueError(f"{text!r} is not a relative path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"{text!r} leaves its root")
    return parts


def fd_path(fd: int) -> Path:
    """A path that opens exactly the file or folder behind ``fd`` (for libraries that want a path).

    ``/proc/self/fd/N`` names the open file itself, not the name it was opened by, so swapping
    the name for a link afterwards changes nothing.
    """
    return Path(f"/proc/self/fd/{fd}")


def _refuse_link(parent_fd: int, name: str, shown: str) -> None:
    """Raise :class:`SymlinkNotFollowed` if ``name`` in ``parent_fd`` is a link (else return)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise SymlinkNotFollowed(f"{shown}: symbolic link not followed")


def open_root(root: Path) -> int:
    """A descriptor of the (trusted) root folder itself; links in the root's own path are followed."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_directory(
    root: Path, relative: Sequence[str] | str | PurePosixPath, *, create: bool = False, mode: int = 0o777
) -> int:
    """A descriptor of ``root/relative``, never following a link below ``root``.

    With ``create``, missing folders are made (``mode`` is filtered by the umask, as ``mkdir``).
    Raises :class:`SymlinkNotFollowed` for a link on the way, ``NotADirectoryError`` for a file,
    ``FileNotFoundError`` for a missing folder when not creating, and ``OSError`` otherwise.
    """
    parts = list(relative) if isinstance(relative, list | tuple) else parts_of(str(relative))
    fd = open_root(root)
    walked: list[str] = []
    try:
        for name in parts:
            walked.append(name)
            shown = "/".join(walked)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, mode, dir_fd=fd)
                child = _open_child_directory(fd, name, shown)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    _refuse_link(fd, name, shown)
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child_directory(parent_fd: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            _refuse_link(parent_fd, name, shown)
        raise


def open_regular_file(root: Path, relative: str | PurePosixPath) -> int:
    """A read-only descriptor of the regular file ``root/relative``, never following a link.

    Raises :class:`SymlinkNotFollowed` for a link (the file itself or a folder above it),
    :class:`NotARegularFile` for a FIFO, socket or device (opened without blocking, so a FIFO
    never hangs), and ``OSError`` (``FileNotFoundError``, ``PermissionError``…) otherwise.
    """
    parts = parts_of(str(relative))
    if not parts:
        raise IsADirectoryError(errno.EISDIR, "is the root folder", str(root))
    parent = open_directory(root, parts[:-1])
    try:
        return open_regular_file_in(parent, parts[-1], "/".join(parts))
    finally:
        os.close(parent)


def open_regular_file_in(dir_fd: int, name: str, shown: str) -> int:
    """:func:`open_regular_file` for ``name`` in a folder already opened (``dir_fd``)."""
    # Look before opening: a socket cannot be opened at all (ENXIO) and opening a device can
    # act on it. The fstat below still decides, so a swap after this look changes nothing.
    _refuse_special(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), shown)
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_link(dir_fd, name, shown)
        raise
    try:
        check_regular(fd, shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_special(st: os.stat_result, shown: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise SymlinkNotFollowed(f"{shown}: symbolic link not followed")
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(f"{shown}: {describe_mode(st.st_mode)}, not a regular file; not read")


def check_regular(fd: int, shown: str) -> os.stat_result:
    """``fstat(fd)``, raising :class:`NotARegularFile` unless it is a regular file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile(f"{shown}: {describe_mode(st.st_mode)}, not a regular file; not read")
    return st


def describe_mode(mode: int) -> str:
    """What kind of file a mode is, in words an operator knows."""
    for test, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return words
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


@contextlib.contextmanager
def opened_regular_file(root: Path, relative: str | PurePosixPath) -> Iterator[int]:
    """:func:`open_regular_file` as a context manager that closes the descriptor."""
    fd = open_regular_file(root, relative)
    try:
        yield fd
    finally:
        os.close(fd)


__all__ = [
    "check_regular",
    "describe_mode",
    "fd_path",
    "open_directory",
    "open_regular_file",
    "open_regular_file_in",
    "open_root",
    "opened_regular_file",
    "parts_of",
]
