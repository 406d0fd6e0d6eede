"""Which filesystem a hot folder lives on, and so which watchdog observer can see its changes.

inotify only reports changes made through this machine's kernel. On a network share (SMB, NFS,
sshfs, ...) files written by *other* machines never produce an event, so ``observer: auto`` polls
there and uses inotify everywhere else (NOTES §3).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from daemon.config import Folder

ObserverKind = Literal["native", "polling"]

#: Filesystems whose changes made by other machines inotify never sees.
NETWORK_FILESYSTEMS = frozenset(
    {
        "cifs",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "ncpfs",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "9p",
        "virtiofs",
        "davfs",
    }
)


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) pairs from the text of /proc/mounts."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape_mount_field(fields[1]), fields[2]))
    return mounts


def filesystem_type(path: Path, mounts_text: str) -> str:
    """The type of the filesystem ``path`` lives on: the longest matching mount point wins."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    for mount_point, fs_type in parse_mounts(mounts_text):
        prefix = mount_point.rstrip("/") + "/"
        covers = target == mount_point or target.startswith(prefix) or mount_point == "/"
        # Later lines win ties: a mount stacked on the same point hides the one below.
        if covers and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def is_network_filesystem(fs_type: str) -> bool:
    # Every FUSE filesystem proper (fuse.sshfs, fuse.rclone, ...) fronts storage that changes behind
    # the kernel's back; local NTFS/exFAT disks mount as plain "fuseblk" and keep inotify.
    return fs_type in NETWORK_FILESYSTEMS or fs_type.startswith("fuse.")


def read_mounts() -> str:
    try:
        return Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def choose_observer(folder: Folder, mounts_text: str) -> ObserverKind:
    """``auto`` means polling on network filesystems, inotify everywhere else."""
    if folder.observer != "auto":
        return folder.observer
    return "polling" if is_network_filesystem(filesystem_type(folder.input, mounts_text)) else "native"
