"""The journal: states, fingerprints, backoff, crash recovery, on a real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from daemon.errors import JournalUnusable
from daemon.journal.store import Fingerprint, Journal, profile_hash

FP = Fingerprint(
    size=100, mtime_ns=1_000, profile_hash=profile_hash("raw", "png", 1024), pipeline_version="1"
)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "state" / "journal.sqlite")
    yield j
    j.close()


def test_opens_in_wal_mode_on_a_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "journal.sqlite"
    Journal.open(path).close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_new_file_becomes_pending_once(journal: Journal) -> None:
    assert journal.offer("hot", "a/b.jpg", FP)
    assert not journal.offer("hot", "a/b.jpg", FP)
    entry = journal.get("hot", "a/b.jpg")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.fingerprint) == ("pending", 0, FP)


def test_claim_marks_running_without_counting_an_attempt(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.claim(["hot"], now=50.0)
    assert entry is not None
    assert (entry.state, entry.attempts, entry.started_at) == ("running", 0, 50.0)
    stored = journal.get("hot", "x.jpg")
    assert stored is not None and stored.state == "running" and stored.attempts == 0
    assert journal.claim(["hot"]) is None


def test_claim_only_takes_the_given_folders_oldest_first(journal: Journal) -> None:
    journal.offer("a", "1.jpg", FP)
    journal.offer("b", "2.jpg", FP)
    journal.offer("b", "3.jpg", FP)
    assert journal.claim([]) is None
    first = journal.claim(["b"])
    second = journal.claim(["b", "a"])
    assert first is not None and first.path == "2.jpg"
    assert second is not None and second.path == "1.jpg"


def test_done_with_the_same_fingerprint_is_not_redone_but_a_changed_file_is(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.claim(["hot"])
    assert entry is not None
    journal.mark_done(entry.id, "/out/x.png")
    assert journal.is_settled("hot", "x.jpg", FP)
    assert not journal.offer("hot", "x.jpg", FP)

    for changed in (
        Fingerprint(101, FP.mtime_ns, FP.profile_hash, FP.pipeline_version),
        Fingerprint(FP.size, 2_000, FP.profile_hash, FP.pipeline_version),
        Fingerprint(FP.size, FP.mtime_ns, profile_hash("raw", "tiff", 1024), FP.pipeline_version),
        Fingerprint(FP.size, FP.mtime_ns, FP.profile_hash, "2"),
    ):
        assert not journal.is_settled("hot", "x.jpg", changed)
    changed = Fingerprint(101, 2_000, FP.profile_hash, FP.pipeline_version)
    assert journal.offer("hot", "x.jpg", changed)
    again = journal.get("hot", "x.jpg")
    assert again is not None and (again.state, again.attempts, again.fingerprint) == ("pending", 0, changed)


def test_failed_is_not_retried_until_the_file_changes(journal: Journal) -> None:
    journal.offer("hot", "bad.jpg", FP)
    entry = journal.claim(["hot"])
    assert entry is not None
    journal.mark_failed(entry.id, "CorruptInput", "truncated JPEG")
    assert not journal.offer("hot", "bad.jpg", FP)
    assert journal.offer("hot", "bad.jpg", Fingerprint(200, 5, FP.profile_hash, "1"))


def test_redo_done_treats_a_done_file_seen_again_as_a_new_drop(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.claim(["hot"])
    assert entry is not None
    journal.mark_done(entry.id, None)
    assert not journal.is_settled("hot", "x.jpg", FP, redo_done=True)
    assert journal.offer("hot", "x.jpg", FP, redo_done=True)


def test_retry_later_waits_for_its_time_and_keeps_the_reason(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.claim(["hot"], now=100.0)
    assert entry is not None
    journal.retry_later(entry.id, "DiskFull", "no space", next_attempt=110.0)
    assert journal.claim(["hot"], now=109.0) is None
    again = journal.claim(["hot"], now=110.0)
    assert again is not None
    assert again.attempts == 1 and again.last_error == "no space" and again.error_class == "DiskFull"


def test_attempts_not_counted_when_it_was_not_the_files_fault(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.claim(["hot"], now=1.0)
    assert entry is not None
    journal.retry_later(entry.id, "ShareUnavailable", "gone", next_attempt=2.0, count_attempt=False)
    journal.claim(["hot"], now=3.0)
    journal.unclaim(entry.id)
    stored = journal.get_by_id(entry.id)
    assert stored is not None and (stored.state, stored.attempts) == ("pending", 0)


def test_reset_running_returns_interrupted_rows_to_pending(journal: Journal) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        journal.offer("hot", name, FP)
    first = journal.claim(["hot"], now=10.0)
    second = journal.claim(["hot"], now=11.0)
    assert first is not None and second is not None
    journal.mark_done(first.id, None)
    interrupted = journal.reset_running()
    assert [(e.path, e.state, e.started_at) for e in interrupted] == [("b.jpg", "running", 11.0)]
    assert journal.counts() == {"hot": {"pending": 2, "running": 0, "done": 1, "failed": 0}}
    assert journal.backlog() == 2 and journal.backlog(["other"]) == 0


def test_forget_drops_the_row(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    entry = journal.get("hot", "x.jpg")
    assert entry is not None
    journal.forget(entry.id)
    assert journal.get("hot", "x.jpg") is None


def test_recent_failures_newest_first(journal: Journal) -> None:
    for n in range(3):
        journal.offer("hot", f"{n}.jpg", FP)
        entry = journal.claim(["hot"])
        assert entry is not None
        journal.mark_failed(entry.id, "CorruptInput", f"reason {n}")
        time.sleep(0.01)
    assert [e.last_error for e in journal.recent_failures(2)] == ["reason 2", "reason 1"]


def test_committed_transitions_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    script = f"""
import os, signal
from pathlib import Path
from daemon.journal.store import Fingerprint, Journal
j = Journal.open(Path({str(path)!r}))
fp = Fingerprint(1, 2, "p", "1")
for n in range(50):
    j.offer("hot", f"{{n}}.jpg", fp)
e = j.claim(["hot"])
j.mark_done(e.id, "out")
j.claim(["hot"])
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], check=False)
    assert proc.returncode == -9
    journal = Journal.open(path)
    assert journal.counts()["hot"] == {"pending": 48, "running": 1, "done": 1, "failed": 0}
    assert len(journal.reset_running()) == 1
    journal.close()


def test_threads_can_offer_and_check_at_once(journal: Journal) -> None:
    def offer_many(prefix: str) -> None:
        for n in range(100):
            journal.offer("hot", f"{prefix}{n}.jpg", FP)
            journal.is_settled("hot", f"{prefix}{n}.jpg", FP)

    threads = [threading.Thread(target=offer_many, args=(p,)) for p in "abcd"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.counts()["hot"]["pending"] == 400


def test_read_only_access_cannot_change_anything(journal: Journal) -> None:
    journal.offer("hot", "x.jpg", FP)
    reader = Journal.open_read_only(journal.path)
    assert reader.counts()["hot"]["pending"] == 1
    with pytest.raises(JournalUnusable):
        reader.offer("hot", "y.jpg", FP)
    reader.close()


def test_a_crash_is_counted_on_the_rows_it_interrupted_and_cleared_by_a_real_outcome(
    journal: Journal,
) -> None:
    for name in ("a.jpg", "b.jpg"):
        journal.offer("hot", name, FP)
    first = journal.claim(["hot"])
    assert first is not None
    assert [(e.path, e.crashes) for e in journal.reset_running()] == [("a.jpg", 1)]
    again = journal.claim(["hot"])
    assert again is not None and again.path == "a.jpg" and (again.crashes, again.attempts) == (1, 0)
    assert [(e.path, e.crashes) for e in journal.reset_running()] == [("a.jpg", 2)]
    third = journal.claim(["hot"])
    assert third is not None
    journal.retry_later(third.id, "OSError", "EIO", next_attempt=0.0)  # a real (transient) failure
    stored = journal.get_by_id(third.id)
    assert stored is not None and (stored.crashes, stored.attempts) == (0, 1)


def test_a_journal_from_before_crash_counting_gains_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE files (
            id INTEGER PRIMARY KEY, folder TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, profile_hash TEXT NOT NULL, pipeline_version TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, error_class TEXT,
            next_attempt REAL NOT NULL DEFAULT 0, started_at REAL, updated_at REAL NOT NULL,
            output TEXT, confidence REAL, review INTEGER NOT NULL DEFAULT 0, UNIQUE (folder, path));
        INSERT INTO files (folder, path, size, mtime_ns, profile_hash, pipeline_version, state, updated_at)
            VALUES ('hot', 'x.jpg', 1, 2, 'p', '1', 'running', 0);
        """
    )
    old.close()
    journal = Journal.open(path)
    try:
        assert [(e.path, e.crashes) for e in journal.reset_running()] == [("x.jpg", 1)]
    finally:
        journal.close()


def test_names_that_are_not_utf8_round_trip_and_stay_distinct(journal: Journal) -> None:
    odd = os.fsdecode(b"caf\xe9.jpg")  # "caf\udce9.jpg", as os.scandir gives it
    for name in (odd, "café.jpg", os.fsdecode(b"caf\xe9.png")):
        assert journal.offer("hot", name, FP)
    assert journal.is_settled("hot", odd, FP) and not journal.offer("hot", odd, FP)
    entry = journal.get("hot", odd)
    assert entry is not None and entry.path == odd
    assert os.fsencode(entry.path) == b"caf\xe9.jpg"
    later = journal.get("hot", os.fsdecode(b"caf\xe9.png"))

    def png(path: str) -> str:
        return str(PurePosixPath(path).with_suffix(".png"))

    assert later is not None and [r.path for r in journal.same_output_rivals(later, png)] == [odd]
    journal.offer("hot", os.fsdecode(b"sub\xff/caf\xe9.jpg"), FP)  # a folder that is not UTF-8
    journal.offer("hot", os.fsdecode(b"sub\xff/caf\xe9.tif"), FP)
    deeper = journal.get("hot", os.fsdecode(b"sub\xff/caf\xe9.tif"))
    assert deeper is not None
    assert [r.path for r in journal.same_output_rivals(deeper, png)] == [os.fsdecode(b"sub\xff/caf\xe9.jpg")]
    claimed = journal.claim(["hot"])
    assert claimed is not None and claimed.path == odd
    journal.mark_failed(claimed.id, "CorruptInput", f"{odd}: truncated")
    assert journal.recent_failures(1)[0].last_error == "caf\\xe9.jpg: truncated"


def test_a_corrupt_page_is_found_at_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path)
    for n in range(300):
        journal.offer("hot", f"{n:04}.jpg", FP)
    journal.close()
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(b"\xa5" * 4096)
    with pytest.raises(JournalUnusable, match=r"damaged.*\.recover"):
        Journal.open(path)
