"""Folder watchers on real directories, with real inotify and polling observers."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import structlog
from watchdog.events import FileCreatedEvent

from daemon.config import DEFAULT_EXCLUDES, Folder
from daemon.watch.filters import FolderFilter, GlobFilter
from daemon.watch.watcher import FolderWatcher, _HintHandler


@pytest.mark.parametrize(
    ("name", "excluded"),
    [
        ("photo.jpg", False),
        ("PHOTO.JPG", False),
        (".hidden.jpg", True),
        ("x.part", True),
        ("x.tmp", True),
        ("x.crdownload", True),
        ("~lock.jpg", True),
        ("Thumbs.db", True),
        ("thumbs.db", True),
        (".DS_Store", True),
        ("._photo.jpg", True),
        (".syncthing.a.jpg.tmp", True),
    ],
)
def test_default_excludes(name: str, excluded: bool) -> None:
    assert GlobFilter(DEFAULT_EXCLUDES)(PurePosixPath(name)) is excluded


def test_folder_filter_include_exclude_and_excluded_parents() -> None:
    accept = FolderFilter(include=("*.jpg", "*.tif"), exclude=(*DEFAULT_EXCLUDES, "raw/*", "*_proof.*"))
    assert accept(PurePosixPath("a/b/c.JPG"))
    assert accept(PurePosixPath("c.tif"))
    assert not accept(PurePosixPath("c.png"))
    assert not accept(PurePosixPath("x_proof.jpg"))
    assert not accept(PurePosixPath("raw/c.jpg"))
    assert not accept(PurePosixPath(".git/c.jpg"))
    assert not accept(PurePosixPath("shoot/.cache/c.jpg"))
    assert not accept.accepts_directory(PurePosixPath(".cache"))
    assert accept.accepts_directory(PurePosixPath("shoot"))


def test_the_event_handler_only_enqueues_and_never_raises() -> None:
    import queue

    hints: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
    handler = _HintHandler(hints)
    handler.on_any_event(FileCreatedEvent("/x/a.jpg"))
    handler.on_any_event(object())  # type: ignore[arg-type]  # a broken event must not escape
    assert hints.get_nowait() == ("/x/a.jpg", False)
    assert hints.empty()


class Collector:
    """Records what a watcher reports, for tests to wait on."""

    def __init__(self) -> None:
        self.ready: list[tuple[str, Path, int]] = []
        self.settled: set[Path] = set()
        self._lock = threading.Lock()

    def on_ready(self, folder: Folder, path: Path, st: os.stat_result) -> None:
        with self._lock:
            self.ready.append((folder.name, path, st.st_size))

    def is_settled(self, folder: Folder, path: Path, st: os.stat_result) -> bool:
        return path in self.settled

    def paths(self) -> list[Path]:
        with self._lock:
            return [p for _, p, _ in self.ready]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 8.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()


def make_folder(root: Path, name: str = "hot", **overrides: Any) -> Folder:
    settings: dict[str, Any] = {
        "name": name,
        "input": root / name,
        "output": root / f"{name}-out",
        "stable_seconds": 0.3,
        "min_age_seconds": 0.0,
        "poll_interval": 0.2,
    }
    settings.update(overrides)
    (root / name).mkdir(exist_ok=True)
    return Folder.model_validate(settings)


@pytest.fixture
def watchers() -> Iterator[list[FolderWatcher]]:
    started: list[FolderWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()


def start(
    watchers: list[FolderWatcher], folder: Folder, collector: Collector, reconcile: float = 60.0
) -> FolderWatcher:
    watcher = FolderWatcher(folder, collector.on_ready, collector.is_settled, reconcile_seconds=reconcile)
    watcher.start()
    watchers.append(watcher)
    assert collector.wait_for(lambda: watcher.available and watcher.scans >= 1)
    return watcher


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_backlog_and_new_files_are_reported_once_each(
    tmp_path: Path, observer: str, watchers: list[FolderWatcher]
) -> None:
    folder = make_folder(tmp_path, observer=observer)
    (folder.input / "old.jpg").write_bytes(b"old")
    (folder.input / "sub").mkdir()
    (folder.input / "sub" / "deep.jpg").write_bytes(b"deep")
    (folder.input / ".hidden.jpg").write_bytes(b"no")
    collector = Collector()
    watcher = start(watchers, folder, collector)
    assert watcher.kind == observer
    (folder.input / "new.jpg").write_bytes(b"new")
    expected = {folder.input / "old.jpg", folder.input / "sub" / "deep.jpg", folder.input / "new.jpg"}
    assert collector.wait_for(lambda: set(collector.paths()) == expected)
    time.sleep(1.0)
    assert sorted(collector.paths()) == sorted(expected)


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_a_rename_counts_as_the_arrival_of_the_new_name(
    tmp_path: Path, observer: str, watchers: list[FolderWatcher]
) -> None:
    folder = make_folder(tmp_path, observer=observer)
    collector = Collector()
    start(watchers, folder, collector)
    part = folder.input / "x.jpg.part"
    part.write_bytes(b"partial copy")
    time.sleep(0.8)
    assert collector.paths() == []
    part.rename(folder.input / "x.jpg")
    assert collector.wait_for(lambda: collector.paths() == [folder.input / "x.jpg"])


def test_a_directory_moved_in_is_scanned(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    folder = make_folder(tmp_path, observer="native")
    collector = Collector()
    start(watchers, folder, collector)
    staging = tmp_path / "staging" / "shoot"
    staging.mkdir(parents=True)
    (staging / "a.jpg").write_bytes(b"a")
    (staging / "b.jpg").write_bytes(b"b")
    staging.rename(folder.input / "shoot")
    expected = {folder.input / "shoot" / "a.jpg", folder.input / "shoot" / "b.jpg"}
    assert collector.wait_for(lambda: set(collector.paths()) == expected)


def test_a_file_still_being_written_is_reported_only_when_complete(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    folder = make_folder(tmp_path, observer="native", stable_seconds=0.6)
    collector = Collector()
    start(watchers, folder, collector)
    target = folder.input / "slow.jpg"
    with target.open("wb") as fh:
        for _ in range(6):
            fh.write(b"z" * 1000)
            fh.flush()
            time.sleep(0.3)
            assert collector.paths() == []
    assert collector.wait_for(lambda: len(collector.ready) == 1)
    assert collector.ready[0][2] == 6000


def test_settled_files_are_skipped_by_scans(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    folder = make_folder(tmp_path, observer="polling")
    (folder.input / "done.jpg").write_bytes(b"d")
    (folder.input / "todo.jpg").write_bytes(b"t")
    collector = Collector()
    collector.settled.add(folder.input / "done.jpg")
    start(watchers, folder, collector, reconcile=0.5)
    assert collector.wait_for(lambda: collector.paths() == [folder.input / "todo.jpg"])


def test_the_reconcile_scan_finds_what_no_event_reported(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    # Polling once an hour: only the reconcile scan can find the new file in time.
    folder = make_folder(tmp_path, observer="polling", poll_interval=3600)
    collector = Collector()
    watcher = start(watchers, folder, collector, reconcile=0.6)
    (folder.input / "missed.jpg").write_bytes(b"m")
    assert collector.wait_for(lambda: collector.paths() == [folder.input / "missed.jpg"], timeout=5)
    assert watcher.scans >= 2


def test_a_dead_emitter_is_restarted(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    folder = make_folder(tmp_path, observer="polling")
    collector = Collector()
    watcher = start(watchers, folder, collector)
    observer = watcher._observer
    assert observer is not None
    emitter = next(iter(observer.emitters))
    with structlog.testing.capture_logs() as logs:
        emitter.stop()  # what watchdog's polling emitter does to itself when a share hiccups
        emitter.join()
        assert not watcher.healthy() or watcher._observer is not observer
        assert collector.wait_for(lambda: watcher.healthy() and watcher._observer is not observer)
    assert any(e["event"] == "observer_restarted" for e in logs)
    (folder.input / "after.jpg").write_bytes(b"a")
    assert collector.wait_for(lambda: collector.paths() == [folder.input / "after.jpg"])


def test_an_unreachable_folder_waits_logs_once_and_the_others_go_on(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    share = make_folder(tmp_path, "share", observer="polling")
    local = make_folder(tmp_path, "local", observer="native")
    collector = Collector()
    with structlog.testing.capture_logs() as logs:
        share_watcher = start(watchers, share, collector)
        start(watchers, local, collector)
        away = tmp_path / "unmounted"
        share.input.rename(away)  # the share drops out from under the watcher
        assert collector.wait_for(lambda: not share_watcher.available)
        (local.input / "local.jpg").write_bytes(b"l")
        assert collector.wait_for(lambda: collector.paths() == [local.input / "local.jpg"])
        (away / "during.jpg").write_bytes(b"d")
        time.sleep(2.5)  # several probes while it is gone: still only one share_lost
        assert share_watcher.healthy()
        away.rename(share.input)
        assert collector.wait_for(lambda: share.input / "during.jpg" in collector.paths(), timeout=10)
    events = [e["event"] for e in logs if e.get("folder") == "share"]
    assert events.count("share_lost") == 1
    assert events.count("share_back") == 1


class JournalLike(Collector):
    """Settles what it was handed, by the ``stat`` it was handed, as the service's journal does."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[Path, int] = {}
        self._seen: dict[Path, tuple[int, int]] = {}

    def on_ready(self, folder: Folder, path: Path, st: os.stat_result) -> None:
        super().on_ready(folder, path, st)
        self.modes[path] = st.st_mode
        self._seen[path] = (st.st_size, st.st_mtime_ns)

    def is_settled(self, folder: Folder, path: Path, st: os.stat_result) -> bool:
        return self._seen.get(path) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_links_and_special_files_are_reported_as_themselves_once_and_linked_folders_never_walked(
    tmp_path: Path, observer: str, watchers: list[FolderWatcher]
) -> None:
    folder = make_folder(tmp_path, observer=observer)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "old.jpg").write_bytes(b"old")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    (folder.input / "link.jpg").symlink_to(secret)
    os.mkfifo(folder.input / "pipe.jpg")
    collector = JournalLike()
    start(watchers, folder, collector, reconcile=0.5)
    # Arriving while watched, so the observer meets them, not only the start-up scan.
    (folder.input / "linked").symlink_to(outside)
    (folder.input / "sub").mkdir()
    (folder.input / "sub" / "late.jpg").symlink_to(secret)
    time.sleep(0.8)
    (outside / "new.jpg").write_bytes(b"new")
    (outside / "deeper").mkdir()
    (outside / "deeper" / "deep.jpg").write_bytes(b"deep")
    (folder.input / "real.jpg").write_bytes(b"real")
    expected = {
        folder.input / name for name in ("link.jpg", "pipe.jpg", "linked", "sub/late.jpg", "real.jpg")
    }
    assert collector.wait_for(lambda: set(collector.paths()) == expected), collector.paths()
    time.sleep(1.5)  # polls and reconcile scans pass over all of it again
    assert sorted(collector.paths()) == sorted(expected), "each once, nothing behind the linked folder"
    kinds = {path.name: stat.S_IFMT(mode) for path, mode in collector.modes.items()}
    assert kinds == {
        "link.jpg": stat.S_IFLNK,
        "linked": stat.S_IFLNK,
        "late.jpg": stat.S_IFLNK,
        "pipe.jpg": stat.S_IFIFO,
        "real.jpg": stat.S_IFREG,
    }


def _mount(*args: str | Path) -> None:
    subprocess.run(["mount", *map(str, args)], check=True, capture_output=True)


def _unmount(path: Path) -> None:
    # Lazy, as a network share drops out: open descriptors keep the old mount, new opens see the
    # bare mount point.
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root (CI runs as root)")


@needs_root
def test_an_unmounted_share_is_unavailable_until_it_is_back_and_its_empty_mount_point_is_never_read(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    (nas / "a.jpg").write_bytes(b"a")
    folder = make_folder(tmp_path, observer="polling")
    _mount("--bind", nas, folder.input)
    try:
        collector = JournalLike()
        with structlog.testing.capture_logs() as logs:
            watcher = start(watchers, folder, collector)
            assert collector.wait_for(lambda: collector.paths() == [folder.input / "a.jpg"])
            _unmount(folder.input)
            assert collector.wait_for(lambda: not watcher.available)
            assert not watcher.still_reachable()
            (folder.input / "stray.jpg").write_bytes(b"on the bare mount point")
            time.sleep(2.5)  # several probes while it is gone: still only one share_lost
            assert not watcher.available and watcher.healthy()
            _mount("--bind", nas, folder.input)
            assert collector.wait_for(lambda: watcher.available, timeout=10)
            (nas / "b.jpg").write_bytes(b"b")
            assert collector.wait_for(lambda: folder.input / "b.jpg" in collector.paths())
        assert collector.paths() == [folder.input / "a.jpg", folder.input / "b.jpg"]
        events = [e for e in logs if e.get("folder") == "hot"]
        assert [e["event"] for e in events].count("share_lost") == 1
        assert [e["event"] for e in events].count("share_back") == 1
        lost = next(e for e in events if e["event"] == "share_lost")
        assert "unmounted" in lost["error"], lost
    finally:
        _unmount(folder.input)


@needs_root
def test_a_share_remounted_with_a_new_device_number_is_the_same_share(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    # autofs and systemd automounts remount a network share on use: same source, new st_dev.
    folder = make_folder(tmp_path, observer="polling")
    _mount("-t", "tmpfs", "-o", "size=1m", "hotmatte-test-share", folder.input)
    try:
        collector = JournalLike()
        watcher = start(watchers, folder, collector)
        device = folder.input.stat().st_dev
        held = os.open(folder.input, os.O_RDONLY)  # keeps the old device number taken meanwhile
        try:
            subprocess.run(
                f"umount -l {folder.input} && mount -t tmpfs -o size=1m hotmatte-test-share {folder.input}",
                shell=True,
                check=True,
            )
        finally:
            os.close(held)
        assert folder.input.stat().st_dev != device
        assert watcher.still_reachable()
        (folder.input / "after.jpg").write_bytes(b"x")
        assert collector.wait_for(lambda: collector.paths() == [folder.input / "after.jpg"], timeout=10)
        assert watcher.available
    finally:
        _unmount(folder.input)


@needs_root
def test_a_share_mounted_after_the_daemon_reached_its_empty_mount_point_is_taken(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    # Started before the share was mounted (boot order): the share that arrives is the folder.
    folder = make_folder(tmp_path, observer="native")
    (folder.input / "underneath.jpg").write_bytes(b"u")
    collector = JournalLike()
    watcher = start(watchers, folder, collector)
    assert collector.wait_for(lambda: collector.paths() == [folder.input / "underneath.jpg"])
    with structlog.testing.capture_logs() as logs:
        _mount("-t", "tmpfs", "-o", "size=1m", "hotmatte-test-late-share", folder.input)
        try:
            (folder.input / "on-share.jpg").write_bytes(b"s")
            assert collector.wait_for(lambda: folder.input / "on-share.jpg" in collector.paths())
            assert watcher.available and watcher.still_reachable()
            (folder.input / "live.jpg").write_bytes(b"l")
            assert collector.wait_for(lambda: folder.input / "live.jpg" in collector.paths())
        finally:
            _unmount(folder.input)
    assert [e["event"] for e in logs].count("share_mounted") == 1
    assert [e["event"] for e in logs].count("share_lost") == 0
