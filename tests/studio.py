"""A studio as in production, for fault tests: a non-root service user, a studio group, shared folders.

CI runs as root, but the daemon never does: it runs as a fixed service account with
``UMask=0002``, and its hot, output and error folders are writable by the studio group (any
photographer can make a folder or plant a link there). :func:`studio` builds that: the account
and the group (``useradd``/``groupadd``, which needs root: the tests skip otherwise), a tree
under ``/tmp`` whose shared folders are ``root:studio 2775``, and :meth:`Studio.run_as` keyword
arguments for ``subprocess.Popen`` that start a process as the service user with the unit's umask.

The service user must be able to execute the interpreter and read the checkout and the weights;
where an ancestor folder (``/root`` on these machines) lets nobody but its owner through,
:func:`make_traversable` adds only the search bit for others (never read or write).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

SERVICE_USER = "hotmatte-svc"
STUDIO_GROUP = "hotmatte-studio"
#: The unit file's UMask=.
SERVICE_UMASK = 0o002


def _ensure_group(name: str) -> int:
    subprocess.run(["groupadd", "-f", name], check=True, capture_output=True)
    import grp

    return grp.getgrnam(name).gr_gid


def _ensure_user(name: str, group: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    subprocess.run(["usermod", "-a", "-G", group, name], check=True, capture_output=True)
    return entry.pw_uid, entry.pw_gid


def make_traversable(path: Path) -> None:
    """Give others the search bit on every ancestor of ``path`` that lacks it (and nothing else)."""
    for folder in [path, *path.parents]:
        if not folder.is_dir():
            continue
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)


@dataclass
class Studio:
    """A tree under ``/tmp`` with shared folders, and the service account that works on it."""

    root: Path
    uid: int
    gid: int
    studio_gid: int

    def shared(self, name: str) -> Path:
        """A folder every studio member may write: ``root:studio``, mode 2775 (setgid)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, self.studio_gid)
        os.chmod(path, 0o2775)
        return path

    def private(self, name: str) -> Path:
        """A folder only the service user may use (its state directory: 0750 as in the unit)."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o750)
        return path

    def chown_to_service(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)

    def run_as(self) -> dict[str, Any]:
        """``subprocess.Popen`` keywords: the service user, its groups, the unit's umask."""
        return {
            "user": self.uid,
            "group": self.gid,
            "extra_groups": [self.studio_gid],
            "umask": SERVICE_UMASK,
        }


def make_studio() -> Iterator[Studio]:
    """Build the account, the group and the tree; remove the tree afterwards (see :func:`studio`)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add the service account (CI runs as root)")
    studio_gid = _ensure_group(STUDIO_GROUP)
    uid, gid = _ensure_user(SERVICE_USER, STUDIO_GROUP)
    for needed in (Path(sys.executable).resolve(), Path(sys.executable), (REPO / "weights").resolve()):
        make_traversable(needed)
    root = Path(tempfile.mkdtemp(prefix="hotmatte-studio-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield Studio(root, uid, gid, studio_gid)
    finally:
        shutil.rmtree(root, ignore_errors=True)
