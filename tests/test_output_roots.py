"""An output share that is unmounted under a running daemon: nothing is written in its place, and
the folder's files are processed once, when the share is back (a real bind mount, as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from daemon.roots import MARKER_NAME
from tests.service_harness import Daemon
from tests.studio import Studio
from tests.test_write_safety import journal_entry, small_jpeg, studio_folder


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def _mount(share: Path, mount_point: Path) -> None:
    subprocess.run(["mount", "--bind", str(share), str(mount_point)], check=True, capture_output=True)


def _umount(mount_point: Path) -> None:
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def test_an_unmounted_output_share_is_waited_for_and_nothing_is_written_in_its_place(studio: Studio) -> None:
    config = studio_folder(studio)
    hot, out = studio.root / "hot", studio.root / "hot-out"
    share = Path(tempfile.mkdtemp(prefix="hotmatte-share-", dir="/tmp"))  # unique: helpers run in parallel
    os.chown(share, 0, studio.studio_gid)
    share.chmod(0o2775)
    names = ["a.jpg", "b.jpg"]
    _mount(share, out)
    mounted = True
    try:
        with Daemon(config, run_as=studio.run_as()) as daemon:
            daemon.wait_for("watching")
            assert (share / MARKER_NAME).is_file()  # remembered on the share, at start
            _umount(out)
            mounted = False
            for name in names:
                (hot / name).write_bytes(small_jpeg())
            daemon.wait_for("root_unavailable", timeout=30)
            daemon.wait_for("queued", count=len(names), timeout=30)
            time.sleep(3)  # time enough to have processed both, had the folder not waited
            assert list(out.iterdir()) == []  # nothing in the empty local mount point
            assert daemon.named("done") == []
            assert [journal_entry(studio, name).state for name in names] == ["pending", "pending"]
            assert len(daemon.named("root_unavailable")) == 1  # logged once, not per file or per pass

            _mount(share, out)
            mounted = True
            daemon.wait_for("done", count=len(names), timeout=90)
            time.sleep(1)
            assert daemon.terminate() == 0
        assert sorted(daemon.paths("done")) == names  # each exactly once
        assert daemon.named("root_back")
        assert sorted(p.name for p in share.iterdir()) == [MARKER_NAME, "a.png", "b.png"]
        assert [journal_entry(studio, name).state for name in names] == ["done", "done"]
    finally:
        if mounted:
            _umount(out)
        shutil.rmtree(share, ignore_errors=True)
    assert list(out.iterdir()) == []
