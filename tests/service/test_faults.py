"""``hotmatte run`` against real faults: crash loops, restarts, odd file names, a broken journal or weights.

Each test drives a real daemon process (tests/service_harness.py) over real files; crashes are real
SIGKILLs of a daemon caught while a file is ``running`` (checked in the journal, not assumed).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.finish.roots import MARKER_NAME
from daemon.journal.store import Entry, Journal, State
from daemon.matting.weights import MANIFEST_NAME, WEIGHTS_NAME
from tests.conftest import run_hotmatte
from tests.service_harness import Daemon, folder_settings, write_config
from tests.studio import Studio


@pytest.fixture(scope="module")
def slow_png() -> bytes:
    """A 12 MP PNG: decoding it takes long enough (seconds here) to catch the daemon mid-file."""
    height, width = 3000, 4000
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    planes = [np.broadcast_to(y, (height, width)), np.broadcast_to(x, (height, width))]
    rgb = np.stack([*planes, (planes[0] + planes[1]) / 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def journal_rows(journal_path: Path) -> dict[str, Entry]:
    journal = Journal.open_read_only(journal_path)
    try:
        with journal._lock:
            rows = journal._db.execute("SELECT id FROM files").fetchall()
        entries = [journal.get_by_id(r["id"]) for r in rows]
        return {e.path: e for e in entries if e is not None}
    finally:
        journal.close()


def state_of(journal_path: Path, path: str) -> State | None:
    entry = journal_rows(journal_path).get(path)
    return entry.state if entry else None


def kill_while_running(daemon: Daemon, path: str, journal_path: Path) -> None:
    """SIGKILL the daemon while ``path`` is being processed, as the OOM killer would."""
    daemon.wait_for("started", path=path, timeout=90)
    daemon.signal(signal.SIGSTOP)  # frozen: the journal cannot move on while we look
    try:
        assert state_of(journal_path, path) == "running", f"{path} was no longer running when caught"
    finally:
        daemon.kill()


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model (or at least starts a daemon that loads it)."""


# --- 4: quarantine after two crashes in a row ---------------------------------------------------------


def test_a_file_the_daemon_died_on_twice_in_a_row_is_quarantined_and_the_rest_go_on(
    tmp_path: Path, jpeg: bytes, slow_png: bytes
) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    journal = tmp_path / "state" / "journal.sqlite"
    hot = tmp_path / "hot"
    (hot / "bomb.png").write_bytes(slow_png)
    others = [f"ok{n}.jpg" for n in range(3)]
    for name in others:
        (hot / name).write_bytes(jpeg)
    for _crash in range(2):
        with Daemon(config) as daemon:
            kill_while_running(daemon, "bomb.png", journal)
    assert journal_rows(journal)["bomb.png"].state == "running"
    with Daemon(config) as third:
        failed = third.wait_for("failed", path="bomb.png", timeout=60)[0]
        third.wait_until(
            lambda: sum(e.state == "done" for e in journal_rows(journal).values()) == len(others),
            90,
            "the other files done",
        )
        time.sleep(0.5)
        assert "bomb.png" not in third.paths("started")  # never run a third time
        assert third.terminate() == 0
    assert failed["error_class"] == "DiedWhileProcessing"
    record = json.loads((tmp_path / "hot-out-errors" / "bomb.png.error.json").read_text())
    assert record["error_class"] == "DiedWhileProcessing"
    assert "the daemon died while processing this file" in record["reason"]
    assert (tmp_path / "hot-out-errors" / "bomb.png").read_bytes() == slow_png
    assert not (tmp_path / "hot-out" / "bomb.png").exists()
    rows = journal_rows(journal)
    assert rows["bomb.png"].state == "failed"
    assert all(rows[name].state == "done" for name in others)
    assert not any((tmp_path / "hot-out-errors" / name).exists() for name in others)


def test_stops_past_the_drain_timeout_are_not_crashes(tmp_path: Path, slow_png: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], drain_timeout_seconds=0)
    journal = tmp_path / "state" / "journal.sqlite"
    (tmp_path / "hot" / "big.png").write_bytes(slow_png)
    for _stop in range(2):  # systemctl restart twice while the same big file is in the pipeline
        with Daemon(config) as daemon:
            daemon.wait_for("started", path="big.png", timeout=90)
            assert daemon.terminate(timeout=60) == 0
            time.sleep(0.3)
            assert daemon.named("stop")[0]["drained"] is False
        assert journal_rows(journal)["big.png"].state == "running"
    with Daemon(config) as third:
        third.wait_for("done", path="big.png", timeout=120)
        assert third.named("quarantined") == []
        assert third.terminate() == 0


# --- 9: a crash is not an attempt ---------------------------------------------------------------------


def test_restarts_do_not_use_up_a_files_retries(tmp_path: Path, slow_png: bytes) -> None:
    folder = folder_settings(tmp_path, "hot")
    config = write_config(tmp_path / "c.yaml", [folder], retry={"max_attempts": 2, "backoff_seconds": 1})
    journal = tmp_path / "state" / "journal.sqlite"
    (tmp_path / "hot" / "shoot").mkdir()
    (tmp_path / "hot" / "shoot" / "big.png").write_bytes(slow_png)
    blocker = tmp_path / "hot-out" / "shoot"  # a file where the output folder must go: writing fails
    blocker.parent.mkdir()
    blocker.write_bytes(b"in the way")
    with Daemon(config) as first:
        kill_while_running(first, "shoot/big.png", journal)
    assert journal_rows(journal)["shoot/big.png"].attempts == 0
    with Daemon(config) as second:
        retry = second.wait_for("retry", path="shoot/big.png", timeout=90)[0]
        blocker.unlink()  # the transient problem goes away before the second (last) try
        second.wait_for("done", path="shoot/big.png", timeout=90)
        assert second.named("failed") == []
        assert second.terminate() == 0
    assert retry["attempt"] == 1
    assert (tmp_path / "hot-out" / "shoot" / "big.png").exists()


# --- 5: names that are not UTF-8 ----------------------------------------------------------------------


def test_names_that_are_not_utf8_are_processed_and_nothing_else_stops(tmp_path: Path, jpeg: bytes) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    hot = os.fsencode(tmp_path / "hot")
    files = {b"caf\xe9.jpg": jpeg, b"na\xefve-notes.jpg": b"not a photo\n" * 20, b"a.jpg": jpeg}
    for name, data in files.items():
        with open(hot + b"/" + name, "wb") as fh:
            fh.write(data)
    with Daemon(config) as first:
        first.wait_for("start")
        first.wait_for("done", count=2, timeout=90)
        first.wait_for("failed", count=1, timeout=30)
        (tmp_path / "hot" / "later.jpg").write_bytes(jpeg)
        first.wait_for("done", path="later.jpg", timeout=60)
        assert first.named("watch_error") == []
        assert first.terminate() == 0
    out, errors = os.fsencode(tmp_path / "hot-out"), os.fsencode(tmp_path / "hot-out-errors")
    outputs = sorted(name for name in os.listdir(out) if name != os.fsencode(MARKER_NAME))
    assert outputs == [b"a.png", b"caf\xe9.png", b"later.png"]
    with open(errors + b"/na\xefve-notes.jpg", "rb") as fh:
        assert fh.read() == files[b"na\xefve-notes.jpg"]
    with open(errors + b"/na\xefve-notes.jpg.error.json", "rb") as fh:
        record = json.loads(fh.read().decode("utf-8"))  # valid UTF-8, the odd byte escaped
    assert record["error_class"] == "UnsupportedInput" and "na\\xefve-notes.jpg" in record["source"]

    with Daemon(config) as second:  # after a restart: nothing redone, new files still flow
        second.wait_for("start")
        (tmp_path / "hot" / "after-restart.jpg").write_bytes(jpeg)
        second.wait_for("done", path="after-restart.jpg", timeout=60)
        time.sleep(1.0)
        assert second.paths("started") == ["after-restart.jpg"]
        assert second.named("watch_error") == []
        assert second.terminate() == 0
    status = run_hotmatte("status", "--config", config)
    assert status.returncode == 0, status.stderr
    assert "hot/na\\xefve-notes.jpg" in status.stdout
    rows = journal_rows(tmp_path / "state" / "journal.sqlite")
    assert rows["caf\udce9.jpg"].state == "done" and rows["na\udcefve-notes.jpg"].state == "failed"


# --- 11: journal and weights faults -------------------------------------------------------------------


def one_line_and_exit_2(daemon: Daemon, within: float = 30) -> str:
    started = time.monotonic()
    assert daemon.proc.wait(within) == 2
    elapsed = time.monotonic() - started
    time.sleep(0.2)
    assert len(daemon.stderr) == 1, daemon.stderr
    assert "Traceback" not in daemon.stderr[0]
    print(f"exit 2 after {elapsed:.1f} s: {daemon.stderr[0]}")
    return daemon.stderr[0]


def test_a_journal_with_a_corrupt_page_stops_the_daemon_with_the_repair(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    path = tmp_path / "state" / "journal.sqlite"
    journal = Journal.open(path)
    from daemon.journal.store import Fingerprint

    for n in range(400):  # several pages of rows and index
        journal.offer("hot", f"shoot/{n:04}.jpg", Fingerprint(n, n, "p", "1"))
    journal.close()
    page_size = 4096
    assert path.stat().st_size > 4 * page_size
    with open(path, "r+b") as fh:  # garbage over page 2
        fh.seek(page_size)
        fh.write(os.urandom(page_size))
    with Daemon(config) as daemon:
        line = one_line_and_exit_2(daemon)
    assert str(path) in line and "damaged" in line and ".recover" in line


def test_a_read_only_journal_gives_one_line_and_exit_2(studio: Studio) -> None:
    root = studio.root
    hot = studio.shared("hot")
    studio.shared("hot-out")
    state = studio.private("state")
    config = write_config(
        root / "c.yaml",
        [folder_settings(root, "hot")],
        journal=str(state / "journal.sqlite"),
    )
    assert hot.exists()
    journal = Journal.open(state / "journal.sqlite")
    journal.close()
    for name in os.listdir(state):
        studio.chown_to_service(state / name)
    os.chmod(state / "journal.sqlite", 0o444)
    with Daemon(config, run_as=studio.run_as()) as daemon:
        line = one_line_and_exit_2(daemon)
    assert "journal" in line and "cannot be written" in line


@pytest.mark.parametrize("kind", ["mode-0000", "directory"])
def test_unreadable_weights_give_one_line_and_exit_2(studio: Studio, weights_dir: Path, kind: str) -> None:
    root = studio.root
    studio.shared("hot")
    studio.shared("hot-out")
    state = studio.private("state")
    weights = root / "weights"
    weights.mkdir()
    shutil.copy(weights_dir / MANIFEST_NAME, weights / MANIFEST_NAME)
    if kind == "directory":
        (weights / WEIGHTS_NAME).mkdir()
    else:
        (weights / WEIGHTS_NAME).write_bytes(b"\0" * 1024)
        os.chmod(weights / WEIGHTS_NAME, 0o000)
    config = write_config(
        root / "c.yaml",
        [folder_settings(root, "hot")],
        journal=str(state / "journal.sqlite"),
        weights=str(weights),
    )
    with Daemon(config, run_as=studio.run_as()) as daemon:
        line = one_line_and_exit_2(daemon)
    assert WEIGHTS_NAME in line and "hotmatte weights fetch" in line
