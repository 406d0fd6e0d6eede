"""Whether a hot folder is still on the filesystem it was on when the daemon first reached it.

An unmounted share does not always make its folder vanish: the empty local mount point is still
there, and looks like a hot folder with nothing in it. Processing it (or concluding that every
file was deleted) would be wrong, so each watcher anchors its folder when it first reaches it:
the folder's ``(st_dev, st_ino)`` and the mount that covers it (from ``/proc/self/mountinfo``:
mount point, root within its filesystem, filesystem type and source).

Later looks compare ``(st_dev, st_ino)`` first, which costs one ``stat``. Only when that differs is
the mount table read: a share that was remounted (autofs and systemd automounts give a network
share a new device number each time) is still *the same mount* (same mount point, source, type
and root), and the anchor moves to it. So it does when a filesystem is mounted *over* the
folder's old one (a deeper mount point): the daemon started before the share was mounted, and
anchored on the empty mount point. Anything else (the bare mount point below a share, a bind
mount removed, a shallower or unrelated mount) is :class:`ShareChanged`, and the folder waits.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``, without the parts that change on a remount."""

    mount_point: str
    root: str
    fs_type: str
    source: str


class ShareChanged(OSError):
    """The folder's path now leads to a different filesystem than when it was first reached."""

    def __init__(self, folder: Path, now: Mount | None, then: Mount | None) -> None:
        was = f"{then.source} ({then.fs_type}) on {then.mount_point}" if then else "another filesystem"
        found = f"{now.source} ({now.fs_type}) on {now.mount_point}" if now else "a different filesystem"
        super().__init__(
            errno.ENODEV,
            f"{folder} is no longer on {was} but on {found}: is the share unmounted? "
            "Waiting for it to come back",
            str(folder),
        )


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts listed in the text of ``/proc/self/mountinfo``, in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 6 or len(fields) < dash + 3:
            continue
        mounts.append(
            Mount(
                mount_point=_unescape(fields[4]),
                root=_unescape(fields[3]),
                fs_type=fields[dash + 1],
                source=_unescape(fields[dash + 2]),
            )
        )
    return mounts


def covering_mount(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount ``path`` (a real path) lives on: the longest mount point; later lines win ties."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        covers = point == "/" or path == point or path.startswith(point.rstrip("/") + "/")
        if covers and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def read_mountinfo() -> list[Mount] | None:
    try:
        return parse_mountinfo(MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return None


class ShareAnchor:
    """Remembers where a folder lives; :meth:`check` raises :class:`ShareChanged` once it moved."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._identity: tuple[int, int] | None = None
        self._mount: Mount | None = None

    @property
    def anchored(self) -> bool:
        return self._identity is not None

    def _mount_now(self) -> Mount | None:
        mounts = read_mountinfo()
        if mounts is None:
            return None
        return covering_mount(os.path.realpath(self.folder), mounts)

    def check(self, st: os.stat_result) -> Mount | None:
        """Compare the folder's ``stat`` with the anchor (anchoring on the first call).

        Returns the mount the anchor moved to when a share was mounted over the old one (the
        caller logs it), None when nothing moved; raises :class:`ShareChanged`.
        """
        identity = (st.st_dev, st.st_ino)
        if self._identity is None:
            self._identity, self._mount = identity, self._mount_now()
            return None
        if identity == self._identity:
            return None
        now = self._mount_now()
        if now is not None and now == self._mount:
            # The same share, remounted (a new device number), or the folder recreated in place.
            self._identity = identity
            return None
        if self._mounted_over(now):
            self._identity, self._mount = identity, now
            return now
        raise ShareChanged(self.folder, now, self._mount)

    def _mounted_over(self, now: Mount | None) -> bool:
        then = self._mount
        return now is not None and then is not None and len(now.mount_point) > len(then.mount_point)

    def reachable(self) -> bool:
        """The folder can be stat'ed and is still on its anchored filesystem (no side effects)."""
        try:
            st = os.stat(self.folder)
        except OSError:
            return False
        identity = (st.st_dev, st.st_ino)
        if self._identity is None or identity == self._identity:
            return True
        now = self._mount_now()
        return now is not None and (now == self._mount or self._mounted_over(now))
