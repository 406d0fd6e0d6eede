"""Is an output, error, review or done root still the folder the daemon started with?

A network share that is unmounted leaves an empty local mount point behind; a folder renamed
away would be silently recreated by the next ``mkdir``. Either way results would be written
where nobody looks, then hidden when the share comes back, and never redone. So at start the
daemon *remembers* each root it writes to: its filesystem's device id (``st_dev``) and a random
id it keeps in a hidden marker file there (:data:`MARKER_NAME`, made when absent). Before every
write :func:`check_root` compares both (one ``stat`` and one small read): a root that is gone,
sits on another filesystem, or holds no or another marker raises
:class:`~daemon.errors.ShareUnavailable`. Nothing is written, the file goes back to pending
without counting an attempt, and :func:`folder_roots_available` lets the service leave the folder
alone (logged once) until the share is back.

The markers are also kept beside the journal (``<journal>.roots.json``), so a share that is
unmounted when the daemon *starts* is recognised as well: a root written to on an earlier run is
never made again, and must hold the same marker (copy ``.hotmatte-root`` along when moving a
share on purpose, or remove the root's line from that file).

Roots nobody remembered (``hotmatte process -o DIR``, tests) are not checked: their writer made
them a moment ago.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from daemon.errors import ShareUnavailable

if TYPE_CHECKING:  # config imports naming, which imports outputs, which imports this module
    from daemon.config import Folder

log = structlog.get_logger("hotmatte")

#: Hidden (a leading dot), so every hot folder's default excludes skip it.
MARKER_NAME = ".hotmatte-root"
_MARKER_BYTES = 64
#: How long :func:`folder_roots_available` trusts its last answer (it runs on every feed).
AVAILABILITY_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class RootIdentity:
    device: int
    marker: str


def _read_marker(root: Path) -> str:
    fd = os.open(root / MARKER_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        return os.read(fd, _MARKER_BYTES).decode("ascii", "replace").strip()
    finally:
        os.close(fd)


def _make_marker(root: Path) -> str:
    """Write a fresh random id into the root's marker (never through a link); return it."""
    marker = secrets.token_hex(16)
    try:
        fd = os.open(
            root / MARKER_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o666,
        )
    except FileExistsError:
        return _read_marker(root)  # another daemon (or a start a moment ago) made it first
    try:
        os.write(fd, (marker + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return marker


class RootRegistry:
    """The roots remembered at start, and whether each is reachable now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[Path, RootIdentity] = {}
        #: Roots that could not be remembered at start: unavailable until they can be.
        self._pending: set[Path] = set()
        #: Roots absent at start and never written to: made (and marked) by their first write.
        self._lazy: set[Path] = set()
        self._unavailable: set[Path] = set()
        self._cache: dict[str, tuple[float, bool]] = {}
        #: The markers of every root written to before, kept beside the journal across restarts.
        self._state_file: Path | None = None
        self._markers: dict[str, str] = {}

    def keep_state(self, state_file: Path) -> None:
        """Load (and from now on keep) the markers of the roots written to before, in ``state_file``.

        With it, a root whose share is unmounted when the daemon *starts* is recognised too: it
        lacks the marker the daemon made there on an earlier run.
        """
        try:
            loaded = json.loads(state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            loaded = {}
        except (OSError, ValueError) as exc:
            log.error("roots_state_unreadable", path=str(state_file), error=str(exc), kept="nothing")
            loaded = {}
        with self._lock:
            self._state_file = state_file
            self._markers = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}

    def remember(self, root: Path, *, create: bool = False) -> None:
        """Note ``root``'s filesystem and marker (making the marker when absent).

        Idempotent: a root remembered earlier keeps its first identity, so a reload never
        adopts a share that went away meanwhile. A root the daemon wrote to on an earlier run
        (see :meth:`keep_state`) is never made again and must hold the same marker, else
        :class:`ShareUnavailable`. A root that does not exist yet and was never written to is
        made, and marked, by its first write (``create``), so unused error folders never
        appear. Raises ``OSError`` when the root cannot be made or marked.
        """
        with self._lock:
            if root in self._known:
                return
            expected = self._markers.get(str(root))
        if expected is not None:
            marker = self._same_as_before(root, expected)
        else:
            if create:
                root.mkdir(parents=True, exist_ok=True)
            elif not root.is_dir():
                with self._lock:
                    self._lazy.add(root)
                return
            try:
                marker = _read_marker(root)
            except FileNotFoundError:
                marker = _make_marker(root)
            self._keep_marker(root, marker)
        identity = RootIdentity(os.stat(root).st_dev, marker)
        with self._lock:
            self._known.setdefault(root, identity)
            self._pending.discard(root)
            self._lazy.discard(root)

    def _same_as_before(self, root: Path, expected: str) -> str:
        identity = RootIdentity(-1, expected)
        problem = _problem_with(root, identity, check_device=False)
        if problem is not None:
            raise ShareUnavailable(
                f"{root} {problem}; hotmatte wrote there on an earlier run. If the folder was "
                f"replaced on purpose, remove its line from {self._state_file} and restart hotmatte"
            )
        return expected

    def _keep_marker(self, root: Path, marker: str) -> None:
        with self._lock:
            if self._state_file is None or self._markers.get(str(root)) == marker:
                return
            self._markers[str(root)] = marker
            text = json.dumps(self._markers, indent=1, sort_keys=True) + "\n"
            state_file = self._state_file
            # The state folder is the service's own (0750), so a plain temporary + rename will do.
            tmp = state_file.with_name(f"{state_file.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, state_file)

    def expect(self, root: Path) -> None:
        """Remember ``root`` now, or, when that fails, refuse writes there until it succeeds."""
        try:
            self.remember(root)
        except (OSError, ShareUnavailable):
            with self._lock:
                self._pending.add(root)
            raise

    def is_remembered(self, root: Path) -> bool:
        with self._lock:
            return root in self._known or root in self._pending or root in self._lazy

    def check(self, root: Path, *, writing: bool = True) -> None:
        """Raise :class:`ShareUnavailable` unless ``root`` is still the folder remembered at start.

        ``writing``: a write is about to happen, so a root awaiting its first write is made now.
        """
        with self._lock:
            identity = self._known.get(root)
            pending = root in self._pending
            lazy = root in self._lazy
        if identity is None and not pending and not (lazy and writing):
            return
        if identity is not None:
            problem = _problem_with(root, identity)
        else:
            problem = self._retry_pending(root, create=lazy)
        with self._lock:
            was_unavailable = root in self._unavailable
            if problem is None:
                self._unavailable.discard(root)
            else:
                self._unavailable.add(root)
        if problem is None:
            if was_unavailable:
                log.info("root_back", root=str(root))
            return
        if not was_unavailable:
            log.warning("root_unavailable", root=str(root), reason=problem)
        raise ShareUnavailable(f"{root} {problem}; nothing is written there until it is back")

    def folder_available(self, folder: Folder) -> bool:
        """Every remembered root ``folder`` writes to is reachable (cached for a second)."""
        now = time.monotonic()
        cached = self._cache.get(folder.name)
        if cached is not None and now - cached[0] < AVAILABILITY_CACHE_SECONDS:
            return cached[1]
        try:
            for root in roots_of(folder):
                self.check(root, writing=False)
        except ShareUnavailable:
            available = False
        else:
            available = True
        self._cache[folder.name] = (now, available)
        return available

    def _retry_pending(self, root: Path, *, create: bool = False) -> str | None:
        try:
            self.remember(root, create=create)
        except ShareUnavailable as exc:
            return str(exc).removeprefix(f"{root} ")
        except OSError as exc:
            return f"could not be made or marked ({os.strerror(exc.errno) if exc.errno else exc})"
        return None


def _problem_with(root: Path, identity: RootIdentity, *, check_device: bool = True) -> str | None:
    """Why ``root`` is not the folder remembered as ``identity``, or None when it is."""
    try:
        device = os.stat(root).st_dev
    except FileNotFoundError:
        return "is gone (unmounted, renamed or deleted)"
    except OSError as exc:
        return f"cannot be reached ({os.strerror(exc.errno) if exc.errno else exc})"
    if check_device and device != identity.device:
        return "is on another filesystem than at start (is the share unmounted?)"
    try:
        marker = _read_marker(root)
    except FileNotFoundError:
        return f"has lost its {MARKER_NAME} marker (is the share unmounted?)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"has a link in place of its {MARKER_NAME} marker"
        return f"cannot be read ({os.strerror(exc.errno) if exc.errno else exc})"
    if marker != identity.marker:
        return f"holds another {MARKER_NAME} marker than at start (another share mounted there?)"
    return None


def roots_of(folder: Folder) -> list[Path]:
    """The roots ``folder`` writes to: output and errors always, review and done when used."""
    roots = [folder.output, folder.resolved_error_dir]
    if folder.review_below is not None:
        roots.append(folder.resolved_review_dir)
    if folder.on_success == "move":
        roots.append(folder.resolved_done_dir)
    return roots


#: The daemon's registry: one process, one set of roots.
REGISTRY = RootRegistry()


def remember_roots(folder: Folder) -> None:
    """Remember every root of ``folder`` (at start and when a reload adds it); log what fails."""
    for root in roots_of(folder):
        try:
            REGISTRY.expect(root)
        except (OSError, ShareUnavailable) as exc:
            # Its folder waits (ShareUnavailable) until the root can be made and marked.
            log.error("root_not_remembered", folder=folder.name, root=str(root), error=str(exc))


def keep_state_beside(journal: Path) -> None:
    """Keep the roots' markers in ``<journal stem>.roots.json`` beside the journal."""
    REGISTRY.keep_state(journal.with_name(journal.stem + ".roots.json"))


def check_root(root: Path, *, writing: bool = True) -> None:
    REGISTRY.check(root, writing=writing)


def folder_roots_available(folder: Folder) -> bool:
    return REGISTRY.folder_available(folder)


__all__ = [
    "MARKER_NAME",
    "REGISTRY",
    "RootRegistry",
    "check_root",
    "folder_roots_available",
    "keep_state_beside",
    "remember_roots",
    "roots_of",
]
