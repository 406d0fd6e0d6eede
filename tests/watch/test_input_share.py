"""An input share unmounted under a running daemon waits (logged once), forgets and fails nothing, resumes.

A real bind mount stands for the share: unmounting it (lazily, as a share drops out) leaves the
empty local mount point where the hot folder was, which looks like a hot folder whose files
were all deleted.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import photo, save_jpeg
from tests.service_harness import Daemon, folder_settings, write_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root (CI runs as root)")


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """The daemon runs the real model."""


def _rows(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{tmp_path / 'state' / 'journal.sqlite'}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT path, state FROM files").fetchall())


def _drop(folder: Path, *names: str, big: bool = False) -> None:
    picture = photo("astronaut")[:160, :224]
    if big:  # slow enough to process that a backlog is still pending when the share goes
        picture = np.tile(photo("astronaut"), (3, 4, 1))
    for name in names:
        save_jpeg(folder / name, picture)


def test_an_unmounted_input_share_waits_forgets_nothing_and_resumes_when_mounted_again(
    tmp_path: Path,
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    _drop(nas, "a.jpg", "b.jpg")
    folder = folder_settings(tmp_path, "hot", observer="polling")
    hot = Path(folder["input"])
    config = write_config(tmp_path / "c.yaml", [folder], reconcile_seconds=1)
    subprocess.run(["mount", "--bind", nas, hot], check=True)
    mounted = True
    try:
        with Daemon(config) as daemon:
            daemon.wait_for("done", count=2, timeout=120)
            backlog = [f"c{i}.jpg" for i in range(8)]
            _drop(nas, *backlog, big=True)
            daemon.wait_for("queued", count=len(backlog) + 2)
            subprocess.run(["umount", "-l", hot], check=True)  # the share drops out mid-backlog
            mounted = False
            lost = daemon.wait_for("share_lost", timeout=10)
            _drop(hot, "stray.jpg")  # written onto the bare local mount point
            time.sleep(3.0)  # probes and reconcile scans while it is gone
            rows = _rows(tmp_path)
            assert "pending" in rows.values(), rows  # the case at stake: work waiting on the share
            assert sorted(rows) == sorted(["a.jpg", "b.jpg", *backlog]), "nothing forgotten, stray not taken"
            assert "failed" not in rows.values()
            assert daemon.named("vanished") == [] and daemon.named("failed") == []
            assert len(lost) == 1 and "unmounted" in lost[0]["error"], lost
            subprocess.run(["mount", "--bind", nas, hot], check=True)
            mounted = True
            daemon.wait_for("share_back", timeout=15)
            _drop(nas, "after.jpg")
            daemon.wait_for("done", path="after.jpg", timeout=60)
            daemon.wait_until(
                lambda: set(_rows(tmp_path).values()) == {"done"}, timeout=60, what="the backlog finished"
            )
            assert daemon.named("failed") == [] and daemon.named("vanished") == []
            assert len(daemon.named("share_lost")) == 1
            assert daemon.terminate() == 0
        assert sorted(_rows(tmp_path)) == sorted(["a.jpg", "b.jpg", *backlog, "after.jpg"])
        outputs = sorted(
            p.name for p in (tmp_path / "hot-out").iterdir() if not p.name.startswith(".hotmatte")
        )
        assert outputs == sorted(
            Path(n).with_suffix(".png").name for n in ["a.jpg", "b.jpg", *backlog, "after.jpg"]
        )
    finally:
        if mounted:
            subprocess.run(["umount", "-l", hot], check=False)
