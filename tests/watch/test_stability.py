"""When a file counts as complete: real files, with the clocks under the test's control."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from daemon.watch.stability import StabilityTracker


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_ready_only_after_stable_seconds_unchanged(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 10)
    old = time.time() - 3600
    os.utime(f, (old, old))
    clock = Clock()
    tracker = StabilityTracker(stable_seconds=2.0, min_age_seconds=0.0, clock=clock)
    tracker.note(f)
    assert tracker.due() == []
    clock.now += 1.9
    assert tracker.due() == []
    clock.now += 0.1
    ready = tracker.due()
    assert [p for p, _ in ready] == [f]
    assert ready[0][1].st_size == 10
    assert len(tracker) == 0 and tracker.due() == []


def test_a_change_restarts_the_wait(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    clock = Clock()
    tracker = StabilityTracker(stable_seconds=2.0, min_age_seconds=0.0, clock=clock)
    tracker.note(f)
    clock.now += 2.0
    with f.open("ab") as fh:
        fh.write(b"more")
    assert tracker.due() == []  # seen changed: the two seconds start again from here
    clock.now += 1.5
    assert tracker.due() == []
    clock.now += 0.5
    assert [st.st_size for _, st in tracker.due()] == [5]


def test_min_age_holds_back_a_freshly_written_file(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    clock = Clock()
    wall = Clock(time.time())
    tracker = StabilityTracker(stable_seconds=0.5, min_age_seconds=5.0, clock=clock, wall_clock=wall)
    tracker.note(f)
    clock.now += 0.5
    wall.now += 0.5
    assert tracker.due() == []
    clock.now += 4.5
    wall.now += 4.5
    assert [p for p, _ in tracker.due()] == [f]


def test_a_clock_skewed_mtime_in_the_future_does_not_block_forever(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    future = time.time() + 3600
    os.utime(f, (future, future))
    clock = Clock()
    tracker = StabilityTracker(stable_seconds=1.0, min_age_seconds=3.0, clock=clock)
    tracker.note(f)
    clock.now += 2.9
    assert tracker.due() == []
    clock.now += 0.1
    assert [p for p, _ in tracker.due()] == [f]


def test_vanished_files_are_dropped_and_directories_ignored(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x")
    clock = Clock()
    tracker = StabilityTracker(stable_seconds=1.0, min_age_seconds=0.0, clock=clock)
    tracker.note(f)
    tracker.note(tmp_path)
    tracker.note(tmp_path / "never-existed.jpg")
    assert len(tracker) == 1
    f.unlink()
    clock.now += 5
    assert tracker.due() == [] and len(tracker) == 0


def test_a_slow_copy_is_reported_once_and_only_when_complete(tmp_path: Path) -> None:
    f = tmp_path / "slow.jpg"
    chunks, chunk = 8, b"y" * 4096

    def copy_slowly() -> None:
        with f.open("wb") as fh:
            for _ in range(chunks):
                fh.write(chunk)
                fh.flush()
                time.sleep(0.2)

    writer = threading.Thread(target=copy_slowly)
    writer.start()
    while not f.exists():
        time.sleep(0.01)
    tracker = StabilityTracker(stable_seconds=0.5, min_age_seconds=0.0)
    tracker.note(f)
    reports = []
    finished_at = None
    while finished_at is None or time.monotonic() - finished_at < 1.0:
        for _path, st in tracker.due():
            reports.append((st.st_size, writer.is_alive()))
        if finished_at is None and not writer.is_alive():
            finished_at = time.monotonic()
        time.sleep(0.05)
    assert reports == [(chunks * len(chunk), False)]
