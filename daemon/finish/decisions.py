"""What the operator's Review decisions do to the files (the console's Review page).

A result whose confidence was below the folder's ``review_below`` waits in ``review_dir``:

- **approve**: it is moved into the output tree, where it would have gone had it passed;
- **reject**: the original is copied into ``error_dir`` with its ``.error.json`` saying
  "rejected by the operator" (:func:`daemon.finish.failures.record_failure`, like any failure),
  and the rejected result is moved beside it as ``<name>.rejected<ext>``;
- **rerun**: the result is removed (a new run will write a new one) and the file goes back to
  pending with the chosen profile (the journal's part: ``decide`` of
  :class:`daemon.journal.backend.JournalBackend`, on SQLite or the cluster database).

The same rules as every write (:mod:`daemon.finish.outputs`): the folders on the way are opened
with ``O_NOFOLLOW`` from their trusted roots, the target folder's root must be the one
remembered at start, the move is one ``rename`` (or, across filesystems, a complete fsynced
copy renamed into place before the original is removed), and nothing is read or written
through a link. Paths come from the folder's config and the journal row, never from a request.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from daemon.beneath import open_directory, open_regular_file_in, parts_of
from daemon.config import Config, Folder
from daemon.errors import DecisionRefused, HotmatteError, NotARegularFile, SymlinkNotFollowed
from daemon.finish.cutout import mask_path_for
from daemon.finish.failures import _copy_from, record_failure
from daemon.finish.outputs import Destination, check_name_fits, open_parent, write_atomically
from daemon.journal.names import printable
from daemon.journal.store import REJECTED, Entry
from daemon.profiles import BUILTIN_PROFILES
from daemon.service.folder_files import destination_for

REJECTED_REASON = "rejected by the operator"


def review_result(config: Config, folder: Folder, entry: Entry) -> Destination:
    """Where ``entry``'s result waits for review (from the config, not from the row's text)."""
    return destination_for(folder, entry.path, config, folder.resolved_review_dir)


def _exists(destination: Destination) -> bool:
    try:
        parts = parts_of(destination.relative)
        dir_fd = open_directory(destination.root, parts[:-1])
    except (OSError, HotmatteError):
        return False
    try:
        os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    finally:
        os.close(dir_fd)
    return True


def move_result(source: Destination, target: Destination) -> Path:
    """Move the regular file ``source`` to ``target`` atomically, through no link; return its path.

    Raises :class:`DecisionRefused` when ``source`` is missing, a link or not a regular file, and
    what :func:`open_parent` raises for the target (a link below its root, the share gone...).
    """
    parts = parts_of(source.relative)
    name = parts[-1]
    check_name_fits(target.name)
    try:
        src_dir = open_directory(source.root, parts[:-1])
    except (FileNotFoundError, SymlinkNotFollowed) as exc:
        raise DecisionRefused(
            f"the result {printable(source.relative.as_posix())} is not there: {exc}"
        ) from exc
    try:
        try:
            # Judge the name itself; the fstat in open_regular_file_in refuses links and specials.
            os.close(open_regular_file_in(src_dir, name, printable(name)))
        except FileNotFoundError as exc:
            raise DecisionRefused(f"the result {printable(name)} is gone from the review folder") from exc
        except (SymlinkNotFollowed, NotARegularFile) as exc:
            raise DecisionRefused(f"the result {printable(name)} is not a regular file: {exc}") from exc
        dst_dir = open_parent(target)
        try:
            try:
                os.rename(name, target.name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                fd = open_regular_file_in(src_dir, name, printable(name))
                try:
                    write_atomically(target, _copy_from(fd))
                finally:
                    os.close(fd)
                os.unlink(name, dir_fd=src_dir)
            os.fsync(dst_dir)
        finally:
            os.close(dst_dir)
    finally:
        os.close(src_dir)
    return target.path


def _with_mask(source: Destination, target: Destination) -> None:
    """Move a result's ``.mask.png`` along with it, when the profile saved one."""
    mask_name = mask_path_for(Path(source.name)).name
    mask = source.with_name(mask_name)
    if _exists(mask):
        move_result(mask, target.with_name(mask_path_for(Path(target.name)).name))


def approve(config: Config, folder: Folder, entry: Entry) -> Path:
    """Move ``entry``'s reviewed result into the output tree; return where it is now."""
    source = review_result(config, folder, entry)
    target = destination_for(folder, entry.path, config)
    moved = move_result(source, target)
    _with_mask(source, target)
    return moved


def reject(config: Config, folder: Folder, entry: Entry) -> Path:
    """Record the rejection in ``error_dir`` (original copy + ``.error.json``); return the record."""
    source = review_result(config, folder, entry)
    reason = REJECTED_REASON
    if _exists(source):
        stem, suffix = os.path.splitext(source.name)
        kept = Destination(folder.resolved_error_dir, source.relative.with_name(f"{stem}.rejected{suffix}"))
        move_result(source, kept)
        reason = f"{REJECTED_REASON}; the rejected result is kept beside it as {printable(kept.name)}"
    return record_failure(folder, folder.input / entry.path, REJECTED, reason, attempts=entry.attempts)


def rerun(config: Config, folder: Folder, entry: Entry, profile: str) -> None:
    """Check a Re-run with ``profile`` can happen, and remove the result it replaces."""
    if profile not in {**BUILTIN_PROFILES, **config.profiles}:
        raise DecisionRefused(f"there is no profile named {profile!r}")
    if folder.on_success == "move":
        raise DecisionRefused(
            f"folder {folder.name} moves originals to its done folder on success: the original is no"
            " longer in the hot folder to run again; drop it there again instead"
        )
    source = review_result(config, folder, entry)
    parts = parts_of(source.relative)
    with contextlib.suppress(OSError, HotmatteError):
        dir_fd = open_directory(source.root, parts[:-1])
        try:
            os.unlink(parts[-1], dir_fd=dir_fd)  # unlink never follows: a link is only removed
        finally:
            os.close(dir_fd)


__all__ = ["REJECTED_REASON", "approve", "move_result", "reject", "rerun", "review_result"]
