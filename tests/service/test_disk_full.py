"""``hotmatte run`` on a full disk: a real 2 MiB tmpfs under the output and error roots, or the journal.

A full disk is not a property of a file: the folder (or the journal) waits, says so once, keeps
the watchdog fed, and when space returns every file completes exactly once.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.finish.roots import MARKER_NAME
from daemon.journal.store import Journal
from tests.notify_listener import NotifyListener, notify
from tests.service_harness import Daemon, folder_settings, write_config

__all__ = ["notify"]  # the fixture, imported for pytest


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A real 2 MiB tmpfs, mounted for this test only (needs root, as CI has)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mountpoint = Path(tempfile.mkdtemp(prefix="hotmatte-c-disk-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)], check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; return it (unlink it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 16, 4096, 512, 1):  # unbuffered, down to the last byte
            while True:
                try:
                    os.write(fd, b"\xff" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


def test_a_full_output_disk_makes_the_folder_wait_then_everything_completes_once(
    tmp_path: Path, small_disk: Path, jpeg: bytes, notify: NotifyListener
) -> None:
    folder = folder_settings(
        tmp_path, "hot", output=str(small_disk / "out"), error_dir=str(small_disk / "out-errors")
    )
    config = write_config(
        tmp_path / "c.yaml",
        [folder],
        retry={"max_attempts": 1, "backoff_seconds": 0.5},  # no budget at all for real failures
        stall_seconds=1.0,
    )
    filler = fill(small_disk)
    good = [f"{n}.jpg" for n in range(4)]
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "500000"}
    with Daemon(config, env) as daemon:
        daemon.wait_for("start")
        for name in good:
            (tmp_path / "hot" / name).write_bytes(jpeg)
        (tmp_path / "hot" / "notes.jpg").write_bytes(b"not a photo\n" * 50)
        daemon.wait_for("disk_full", timeout=90)
        waiting_since = time.monotonic()
        time.sleep(4.0)  # several probes meet the full disk
        assert daemon.proc.poll() is None
        assert len(daemon.named("disk_full")) == 1  # logged once
        assert daemon.named("done") == [] and daemon.named("failed") == []
        assert daemon.named("stalled") == [] and len(notify.pings(after=waiting_since)) >= 8
        assert any("waiting for disk space" in s for s in notify.statuses())
        written = [p for p in small_disk.rglob("*") if p.is_file() and p.name != MARKER_NAME]
        assert written == [filler]  # nothing written there (but the roots' markers, daemon.finish.roots)
        journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
        try:
            rows = [journal.get("hot", name) for name in [*good, "notes.jpg"]]
        finally:
            journal.close()
        assert all(r is not None and r.state in ("pending", "running") and r.attempts == 0 for r in rows)

        filler.unlink()  # space comes back
        daemon.wait_for("done", count=len(good), timeout=120)
        daemon.wait_for("failed", path="notes.jpg", timeout=60)
        time.sleep(1.0)
        assert daemon.named("disk_space_back")
        assert sorted(daemon.paths("done")) == sorted(good)  # each exactly once
        assert daemon.paths("failed") == ["notes.jpg"]
        assert daemon.terminate() == 0
    outputs = sorted(p.name for p in (small_disk / "out").iterdir() if p.name != MARKER_NAME)
    assert outputs == sorted(n.replace(".jpg", ".png") for n in good)
    record = json.loads((small_disk / "out-errors" / "notes.jpg.error.json").read_text())
    assert record["error_class"] == "UnsupportedInput"


def test_a_full_disk_under_the_journal_waits_and_loses_no_transition(
    tmp_path: Path, small_disk: Path, jpeg: bytes
) -> None:
    journal_path = small_disk / "journal.sqlite"
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], journal=str(journal_path))
    names = [f"{n}.jpg" for n in range(5)]
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        filler = fill(small_disk)
        for name in names:
            (tmp_path / "hot" / name).write_bytes(jpeg)
        daemon.wait_for("journal_disk_full", timeout=60)
        time.sleep(3.0)
        assert daemon.proc.poll() is None
        assert len(daemon.named("journal_disk_full")) == 1
        assert daemon.named("done") == []
        filler.unlink()
        daemon.wait_for("done", count=len(names), timeout=120)
        daemon.wait_for("journal_space_back", timeout=10)
        time.sleep(1.0)
        assert sorted(daemon.paths("done")) == sorted(names)  # each exactly once
        assert daemon.terminate() == 0
    journal = Journal.open_read_only(journal_path)
    try:
        assert journal.counts()["hot"]["done"] == len(names)
    finally:
        journal.close()
    assert sorted(p.name for p in (tmp_path / "hot-out").iterdir() if p.name != MARKER_NAME) == sorted(
        n.replace(".jpg", ".png") for n in names
    )
