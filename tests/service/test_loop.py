"""``hotmatte run`` end to end: a real daemon process, real folders, the real model at a small size."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from daemon.finish.roots import MARKER_NAME
from daemon.journal.store import Journal, State
from tests.service_harness import (
    SMALL_PHOTO_SIZE,
    Daemon,
    assert_cutout_of,
    folder_settings,
    temporaries,
    write_config,
)

SIZE = SMALL_PHOTO_SIZE


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def journal_counts(tmp_path: Path) -> dict[str, dict[State, int]]:
    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        return journal.counts()
    finally:
        journal.close()


def test_a_slowly_copied_file_is_processed_once_and_only_when_complete(tmp_path: Path, jpeg: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot", stable_seconds=1.0)])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        target = tmp_path / "hot" / "slow.jpg"
        pieces = [jpeg[i : i + len(jpeg) // 6 + 1] for i in range(0, len(jpeg), len(jpeg) // 6 + 1)]
        with target.open("wb") as fh:
            for piece in pieces:  # a copy over a slow link: a piece every 0.6 s, 3-4 s in all
                assert daemon.named("queued") == [], "queued while still being written"
                fh.write(piece)
                fh.flush()
                last_write = time.time()
                time.sleep(0.6)
        done = daemon.wait_for("done")
        time.sleep(2.0)  # nothing more may happen to it
        assert len(daemon.named("started")) == 1 and len(daemon.named("done")) == 1
        queued = daemon.named("queued")[0]
        # Complete means unchanged for stable_seconds (1.0) after the last write.
        assert datetime.fromisoformat(queued["timestamp"]).timestamp() >= last_write + 0.9
        assert queued["size"] == len(jpeg)
        assert_cutout_of(Path(done[0]["output"]), SIZE)
        assert daemon.terminate() == 0


def test_a_burst_of_200_files_all_come_out_mirrored_with_bounded_memory(tmp_path: Path, jpeg: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        idle_mb = daemon.memory_mb()
        sources = [tmp_path / "hot" / f"shoot{n % 4}" / f"img{n:03}.jpg" for n in range(200)]
        for source in sources:
            source.parent.mkdir(exist_ok=True)
            source.write_bytes(jpeg)
        started = time.monotonic()
        daemon.wait_for("done", count=50, timeout=120)
        rss_at_50 = daemon.memory_mb()
        daemon.wait_for("done", count=200, timeout=240)
        seconds = time.monotonic() - started
        rss_at_200, peak = daemon.memory_mb(), daemon.memory_mb("VmHWM")
        for source in sources:
            relative = source.relative_to(tmp_path / "hot")
            assert_cutout_of(tmp_path / "hot-out" / relative.with_suffix(".png"), SIZE)
        assert sorted(daemon.paths("done")) == sorted(str(s.relative_to(tmp_path / "hot")) for s in sources)
        print(
            f"burst: {200 / seconds:.1f} files/s; RSS idle {idle_mb:.0f} MiB, after 50 {rss_at_50:.0f},"
            f" after 200 {rss_at_200:.0f}, peak {peak:.0f}"
        )
        # Flat, not growing with the backlog: the last 150 files may not add more than a little.
        assert rss_at_200 - rss_at_50 < 150, (rss_at_50, rss_at_200)
        assert peak - idle_mb < 600, (idle_mb, peak)
        assert daemon.terminate() == 0
    assert journal_counts(tmp_path)["hot"]["done"] == 200


def test_kill_9_mid_burst_then_restart_gives_exactly_one_output_each(tmp_path: Path, jpeg: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    sources = [tmp_path / "hot" / f"d{n % 3}" / f"{n:02}.jpg" for n in range(60)]
    out = tmp_path / "hot-out"
    with Daemon(config) as first:
        first.wait_for("start")
        for source in sources:
            source.parent.mkdir(exist_ok=True)
            source.write_bytes(jpeg)
        first.wait_for("done", count=12, timeout=120)
        first.kill()
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*.png")}
    assert 12 <= len(before) < 60
    with Daemon(config) as second:
        second.wait_until(lambda: journal_counts(tmp_path)["hot"]["done"] == 60, 180, "all 60 done")
        redone = set(second.paths("done")) & {str(p.relative_to(out).with_suffix(".jpg")) for p in before}
        assert second.terminate() == 0
    assert redone == set(), "processed again although its output existed"
    outputs = sorted(out.rglob("*"))
    # Every output, and nothing else but the daemon's hidden root marker (daemon/finish/roots.py).
    assert [p for p in outputs if p.is_file() and p.name != MARKER_NAME] == sorted(
        out / s.relative_to(tmp_path / "hot").with_suffix(".png") for s in sources
    )
    for source in sources:
        assert_cutout_of(out / source.relative_to(tmp_path / "hot").with_suffix(".png"), SIZE)
    for path, identity in before.items():  # untouched: same file, never rewritten
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == identity
    assert temporaries(out) == []


def test_polling_sees_new_files_and_start_up_and_reconcile_scans_find_the_rest(
    tmp_path: Path, jpeg: bytes
) -> None:
    folders = [
        folder_settings(tmp_path, "share", observer="polling"),
        folder_settings(tmp_path, "sleepy", observer="polling", poll_interval=3600),
    ]
    config = write_config(tmp_path / "c.yaml", folders, reconcile_seconds=2)
    with Daemon(config) as first:
        first.wait_for("start")
        (tmp_path / "share" / "live.jpg").write_bytes(jpeg)
        first.wait_for("done", folder="share", path="live.jpg")
        # Polling once an hour: only the periodic reconcile scan can find this one.
        (tmp_path / "sleepy" / "reconciled.jpg").write_bytes(jpeg)
        first.wait_for("done", folder="sleepy", path="reconciled.jpg", timeout=30)
        assert first.terminate() == 0
    (tmp_path / "share" / "while-stopped.jpg").write_bytes(jpeg)
    with Daemon(config) as second:
        second.wait_for("done", folder="share", path="while-stopped.jpg")
        time.sleep(1.0)
        assert second.paths("started") == ["while-stopped.jpg"]  # nothing already done is redone
        assert second.terminate() == 0
    assert_cutout_of(tmp_path / "share-out" / "while-stopped.png", SIZE)


def test_bad_inputs_go_to_the_error_folder_with_a_reason_and_the_daemon_goes_on(
    tmp_path: Path, jpeg: bytes
) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    bad = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "notes.jpg": b"this is a text file, not a photo\n" * 20,
    }
    expected_class = {
        "empty.jpg": "CorruptInput",
        "truncated.jpg": "CorruptInput",
        "notes.jpg": "UnsupportedInput",
    }
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        for name, data in bad.items():
            (tmp_path / "hot" / name).write_bytes(data)
        failed = daemon.wait_for("failed", count=3)
        (tmp_path / "hot" / "good.jpg").write_bytes(jpeg)
        daemon.wait_for("done", path="good.jpg")
        assert daemon.proc.poll() is None
        assert sorted(e["path"] for e in failed) == sorted(bad)
        assert daemon.terminate() == 0
    errors = tmp_path / "hot-out-errors"
    for name, data in bad.items():
        assert (errors / name).read_bytes() == data
        assert (tmp_path / "hot" / name).read_bytes() == data  # the original stays, untouched
        record = json.loads((errors / f"{name}.error.json").read_text())
        assert record["error_class"] == expected_class[name], record
        assert name in record["reason"] and record["timestamp"] and record["source"].endswith(name)
        assert not (tmp_path / "hot-out" / name).with_suffix(".png").exists()
    counts = journal_counts(tmp_path)["hot"]
    assert (counts["failed"], counts["done"]) == (3, 1)


def test_sighup_adds_and_removes_folders_and_a_broken_config_keeps_the_old_one(
    tmp_path: Path, jpeg: bytes
) -> None:
    first = folder_settings(tmp_path, "first")
    second = folder_settings(tmp_path, "second")
    config = write_config(tmp_path / "c.yaml", [first])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        write_config(config, [first, second])
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for("reload")[0]["added"] == ["second"]
        (tmp_path / "second" / "a.jpg").write_bytes(jpeg)
        daemon.wait_for("done", folder="second", path="a.jpg")

        config.write_text("folders: [{name: second, input: nowhere}]\nbogus_key: 1\n")
        daemon.signal(signal.SIGHUP)
        problems = daemon.wait_for("reload_failed")[0]["problems"]
        assert any("bogus_key" in p for p in problems) and any("output" in p for p in problems)
        (tmp_path / "second" / "b.jpg").write_bytes(jpeg)
        daemon.wait_for("done", folder="second", path="b.jpg")

        write_config(config, [second])
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for("reload", count=2)[1]["removed"] == ["first"]
        (tmp_path / "first" / "ignored.jpg").write_bytes(jpeg)
        time.sleep(2.5)
        assert daemon.paths("queued", "first") == []
        assert daemon.terminate() == 0


def test_sigterm_drains_in_flight_files_and_exits_0(tmp_path: Path, jpeg: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        for n in range(30):
            (tmp_path / "hot" / f"{n:02}.jpg").write_bytes(jpeg)
        daemon.wait_for("queued", count=30)
        daemon.wait_for("started", count=3)
        assert daemon.terminate() == 0
        time.sleep(0.3)
        stop = daemon.named("stop")
        assert stop and stop[0]["drained"] is True
        started, done = daemon.paths("started"), daemon.paths("done")
        assert sorted(started) == sorted(done)  # every file it began, it finished
        for path in done:
            assert_cutout_of(tmp_path / "hot-out" / Path(path).with_suffix(".png"), SIZE)
    assert temporaries(tmp_path / "hot-out") == []
    counts = journal_counts(tmp_path)["hot"]
    assert counts["running"] == 0 and counts["done"] == len(done) and counts["pending"] == 30 - len(done)


def test_sigterm_past_the_drain_timeout_exits_0_and_the_rest_is_done_after_restart(
    tmp_path: Path, jpeg: bytes
) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], drain_timeout_seconds=0)
    sources = [tmp_path / "hot" / f"{n:02}.jpg" for n in range(16)]
    with Daemon(config) as first:
        first.wait_for("start")
        for source in sources:
            source.write_bytes(jpeg)
        first.wait_for("started", count=4)
        assert first.terminate(timeout=30) == 0
        time.sleep(0.3)
        assert first.named("stop")[0]["drained"] is False
    with Daemon(config) as second:
        second.wait_until(lambda: journal_counts(tmp_path)["hot"]["done"] == 16, 120, "all 16 done")
        assert second.terminate() == 0
    for source in sources:
        assert_cutout_of(tmp_path / "hot-out" / source.with_suffix(".png").name, SIZE)
    assert temporaries(tmp_path / "hot-out") == []


def test_sd_notify_messages_arrive_on_the_notify_socket(tmp_path: Path, jpeg: bytes) -> None:
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(1)
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    # Read the socket all the time, as systemd does: a unix datagram socket queues only ~10
    # messages, and watchdog pings arriving while the test waits would crowd out the rest.
    inbox: queue.SimpleQueue[str] = queue.SimpleQueue()
    listening = threading.Event()
    listening.set()

    def listen() -> None:
        while listening.is_set():
            try:
                inbox.put(listener.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()

    def receive_until(prefix: str, timeout: float = 90) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while not (seen and seen[-1].startswith(prefix)):
            remaining = deadline - time.monotonic()
            statuses = [m for m in seen if not m.startswith("WATCHDOG")][-5:]
            assert remaining > 0, f"no {prefix!r} within {timeout} s; last others: {statuses}"
            try:
                seen.append(inbox.get(timeout=remaining))
            except queue.Empty:
                continue
        return seen

    try:
        with Daemon(config, env) as daemon:
            first = receive_until("READY=1")
            assert first[-1].startswith("READY=1\nSTATUS=")
            daemon.wait_for("start", timeout=5)  # READY=1 comes once the watchers run
            pings = [m for m in receive_until("WATCHDOG=1") if m == "WATCHDOG=1"]
            assert pings
            for n in range(15):  # enough to keep a queue for a few status updates
                (tmp_path / "hot" / f"{n}.jpg").write_bytes(jpeg)
            daemon.wait_for("done", count=15)
            statuses = [m for m in receive_until("STATUS=0 to do") if m.startswith("STATUS=")]
            depths = [int(s.removeprefix("STATUS=").split()[0]) for s in statuses]
            assert max(depths) > 0 and depths[-1] == 0, statuses
            daemon.signal(signal.SIGHUP)
            reload = receive_until("READY=1")
            assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in reload)
            daemon.signal(signal.SIGTERM)
            assert "STOPPING=1" in receive_until("STOPPING=1")
            assert daemon.proc.wait(60) == 0
    finally:
        listening.clear()
        reader.join(timeout=5)
        listener.close()


def test_missing_weights_give_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], weights=str(empty))
    with Daemon(config, {"HOTMATTE_WEIGHTS": str(empty)}) as daemon:
        assert daemon.proc.wait(60) == 2
        time.sleep(0.2)
        assert len(daemon.stderr) == 1 and "Traceback" not in daemon.stderr[0], daemon.stderr
        assert "weights" in daemon.stderr[0]


def test_a_bad_config_at_start_names_each_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("folders: [{name: x, input: a}]\nmodel_size: 100\n")
    with Daemon(config) as daemon:
        assert daemon.proc.wait(60) == 2
        time.sleep(0.2)
    assert any("model_size" in line for line in daemon.stderr)
    assert any("output" in line for line in daemon.stderr)
    assert os.path.exists(tmp_path / "state") is False


def test_a_precision_changed_on_sighup_waits_for_a_restart_and_files_go_on(
    tmp_path: Path, jpeg: bytes
) -> None:
    folder = folder_settings(tmp_path, "hot")
    config = write_config(tmp_path / "c.yaml", [folder], precision="fp32")
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        write_config(config, [folder], precision="bf16")
        daemon.signal(signal.SIGHUP)
        assert daemon.wait_for("reload_needs_restart")[0]["keys"] == ["precision"]
        (tmp_path / "hot" / "a.jpg").write_bytes(jpeg)
        daemon.wait_for("done", path="a.jpg")
        assert daemon.terminate() == 0
