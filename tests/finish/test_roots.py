"""An output share that is unmounted under a running daemon, or while it was stopped: nothing is
written in its place, and the folder's files are processed once, when the share is back (a real
bind mount, as root, with the daemon running as the non-root service user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.finish.roots import MARKER_NAME
from tests.finish.test_write_safety import journal_entry, small_jpeg, studio_folder
from tests.service_harness import Daemon
from tests.studio import Studio


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


class Share:
    """A folder under /tmp bind-mounted onto ``mount_point`` (unmounted again at teardown)."""

    def __init__(self, studio: Studio, mount_point: Path) -> None:
        self.mount_point = mount_point
        # Unique: helpers' tests run in parallel on this machine.
        self.path = Path(tempfile.mkdtemp(prefix="hotmatte-share-", dir="/tmp"))
        os.chown(self.path, 0, studio.studio_gid)
        self.path.chmod(0o2775)
        self.mounted = False

    def mount(self) -> None:
        subprocess.run(
            ["mount", "--bind", str(self.path), str(self.mount_point)], check=True, capture_output=True
        )
        self.mounted = True

    def umount(self) -> None:
        if subprocess.run(["umount", str(self.mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(self.mount_point)], check=True, capture_output=True)
        self.mounted = False


@pytest.fixture
def share(studio: Studio) -> Iterator[Share]:
    mounted = Share(studio, studio.shared("hot-out"))
    try:
        yield mounted
    finally:
        if mounted.mounted:
            mounted.umount()
        shutil.rmtree(mounted.path, ignore_errors=True)


def _waits_then_resumes(daemon: Daemon, studio: Studio, share: Share, names: list[str]) -> None:
    """Drop ``names`` with the share unmounted: nothing happens; mount it: each is done once."""
    hot = studio.root / "hot"
    for name in names:
        (hot / name).write_bytes(small_jpeg())
    daemon.wait_until(
        lambda: bool(daemon.named("root_unavailable") or daemon.named("root_not_remembered")),
        30,
        "the folder to wait for its share",
    )
    daemon.wait_for("queued", count=len(names), timeout=30)
    time.sleep(3)  # time enough to have processed them, had the folder not waited
    assert list(share.mount_point.iterdir()) == []  # nothing in the empty local mount point
    assert daemon.named("done") == []
    assert [journal_entry(studio, name).state for name in names] == ["pending"] * len(names)
    assert len(daemon.named("root_unavailable")) <= 1  # logged once, not per file or per pass

    share.mount()
    daemon.wait_for("done", count=len(names), timeout=90)
    time.sleep(1)
    assert sorted(daemon.paths("done")) == names  # each exactly once
    assert [journal_entry(studio, name).state for name in names] == ["done"] * len(names)


def test_an_output_share_unmounted_under_the_daemon_is_waited_for(studio: Studio, share: Share) -> None:
    config = studio_folder(studio)
    share.mount()
    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("watching")
        share.umount()
        _waits_then_resumes(daemon, studio, share, ["a.jpg", "b.jpg"])
        assert daemon.named("root_back")
        assert daemon.terminate() == 0
    # The marker the daemon made on the share at start, and the two results.
    assert sorted(p.name for p in share.path.iterdir()) == [MARKER_NAME, "a.png", "b.png"]
    share.umount()
    assert list(share.mount_point.iterdir()) == []


def test_an_output_share_unmounted_while_the_daemon_was_stopped_is_waited_for(
    studio: Studio, share: Share
) -> None:
    config = studio_folder(studio)
    share.mount()
    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("watching")
        assert daemon.terminate() == 0
    share.umount()
    with Daemon(config, run_as=studio.run_as()) as daemon:
        daemon.wait_for("watching")
        _waits_then_resumes(daemon, studio, share, ["c.jpg"])
        assert daemon.terminate() == 0
    assert sorted(p.name for p in share.path.iterdir()) == [MARKER_NAME, "c.png"]
    share.umount()
    assert list(share.mount_point.iterdir()) == []
