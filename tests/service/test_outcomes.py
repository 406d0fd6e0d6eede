"""What each kind of outcome does to the journal and to the original, with a real journal and files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.config import Folder, Retry
from daemon.errors import CorruptInput, DeviceOutOfMemory, DiskFull, ShareUnavailable
from daemon.finish.outputs import Destination
from daemon.journal.store import Entry, Fingerprint, Journal
from daemon.pipeline.stages import Job, Outcome
from daemon.service.outcomes import OutcomeRecorder, Running

FP = Fingerprint(3, 1, "p", "1")
RETRY = Retry(max_attempts=3, backoff_seconds=10, backoff_max_seconds=25)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.sqlite")
    yield j
    j.close()


def make_folder(tmp_path: Path, **overrides: object) -> Folder:
    (tmp_path / "hot").mkdir(exist_ok=True)
    settings: dict[str, object] = {"name": "hot", "input": tmp_path / "hot", "output": tmp_path / "out"}
    return Folder.model_validate({**settings, **overrides})


def start(journal: Journal, folder: Folder, name: str = "a.jpg") -> tuple[Running, Job]:
    source = folder.input / name
    if not source.exists():
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(b"abc")
        os.utime(source, ns=(FP.mtime_ns, FP.mtime_ns))  # the version FP describes
    journal.offer(folder.name, name, FP)
    entry = journal.claim([folder.name])
    assert entry is not None
    return Running(folder, entry, time.monotonic()), Job(
        source, Destination.at(folder.output / "a.png"), "raw", entry.id
    )


def stored(journal: Journal, running: Running) -> Entry:
    entry = journal.get_by_id(running.entry.id)
    assert entry is not None
    return entry


def test_success_marks_done(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    OutcomeRecorder(journal, lambda: RETRY).record(
        running, Outcome(job, job.destination.path, None, {"model": 0.1})
    )
    entry = stored(journal, running)
    assert (entry.state, entry.output) == ("done", str(job.destination))
    assert job.source.exists()  # on_success: keep


def test_success_moves_the_original_when_asked(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path, on_success="move")
    running, job = start(journal, folder)
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, job.destination.path, None, {}))
    assert not job.source.exists()
    assert (tmp_path / "hot-done" / "a.jpg").read_bytes() == b"abc"


def test_an_original_that_cannot_be_moved_fails_with_its_record_instead_of_being_redone(
    tmp_path: Path, journal: Journal
) -> None:
    # A done row in a move folder is redone whenever its file is seen again: an original left
    # behind by a failed move would be processed at every scan, so the move's error is the file's.
    folder = make_folder(tmp_path, on_success="move")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "hot-done").mkdir()
    (tmp_path / "hot-done" / "shoot").symlink_to(elsewhere)
    running, job = start(journal, folder, "shoot/a.jpg")
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, job.destination.path, None, {}))
    entry = stored(journal, running)
    assert (entry.state, entry.error_class) == ("failed", "SymlinkNotFollowed")
    assert job.source.exists() and not any(elsewhere.iterdir())
    assert (tmp_path / "out-errors" / "shoot" / "a.jpg.error.json").exists()


def test_a_permanent_error_fails_at_once_with_an_error_record(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, None, CorruptInput("truncated"), {}))
    entry = stored(journal, running)
    assert (entry.state, entry.error_class, entry.last_error) == ("failed", "CorruptInput", "truncated")
    record = json.loads((tmp_path / "out-errors" / "a.jpg.error.json").read_text())
    assert record["reason"] == "truncated" and record["attempts"] == 1


def test_an_unexpected_exception_fails_with_its_class_name(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, None, ZeroDivisionError("x"), {}))
    entry = stored(journal, running)
    assert entry.state == "failed" and entry.error_class == "ZeroDivisionError"
    assert (tmp_path / "out-errors" / "a.jpg").read_bytes() == b"abc"


def test_transient_errors_back_off_then_give_up(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    recorder = OutcomeRecorder(journal, lambda: RETRY)
    running, job = start(journal, folder)
    delays = []
    for attempt in (1, 2):
        before = time.time()
        recorder.record(running, Outcome(job, None, DeviceOutOfMemory("out of memory"), {}))
        entry = stored(journal, running)
        assert (entry.state, entry.attempts) == ("pending", attempt)
        delays.append(round(entry.next_attempt - before))
        claimed = journal.claim([folder.name], now=entry.next_attempt)
        assert claimed is not None
        running = Running(folder, claimed, time.monotonic())
    assert delays == [10, 20]
    recorder.record(running, Outcome(job, None, DeviceOutOfMemory("out of memory"), {}))
    entry = stored(journal, running)
    assert entry.state == "failed" and entry.last_error == "gave up after 3 attempts: out of memory"
    assert (tmp_path / "out-errors" / "a.jpg.error.json").exists()


def test_a_full_disk_never_uses_up_attempts_and_makes_the_folder_wait(
    tmp_path: Path, journal: Journal
) -> None:
    folder = make_folder(tmp_path)
    recorder = OutcomeRecorder(journal, lambda: RETRY)
    running, job = start(journal, folder)
    for _ in range(2 * RETRY.max_attempts):
        recorder.record(running, Outcome(job, None, DiskFull("no space"), {}))
        entry = stored(journal, running)
        assert (entry.state, entry.attempts, entry.error_class) == ("pending", 0, "DiskFull")
        assert recorder.space.waiting() == [folder.name]
        claimed = journal.claim([folder.name], now=entry.next_attempt)
        assert claimed is not None
        running = Running(folder, claimed, time.monotonic())
    recorder.record(running, Outcome(job, Path("out/a.png"), None, {}))
    assert stored(journal, running).state == "done" and recorder.space.waiting() == []
    assert not (tmp_path / "out-errors").exists()


def test_an_unavailable_share_does_not_use_up_attempts(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, None, ShareUnavailable("gone"), {}))
    entry = stored(journal, running)
    assert (entry.state, entry.attempts, entry.error_class) == ("pending", 0, "ShareUnavailable")


def test_an_outcome_for_a_row_replaced_meanwhile_changes_nothing(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    journal.offer(folder.name, "a.jpg", Fingerprint(4, 2, "p", "1"))  # the file changed while running
    OutcomeRecorder(journal, lambda: RETRY).record(running, Outcome(job, None, CorruptInput("old"), {}))
    entry = journal.get(folder.name, "a.jpg")
    assert entry is not None and entry.state == "pending" and entry.fingerprint.size == 4
    assert not (tmp_path / "out-errors").exists()


def test_a_vanished_source_is_forgotten_not_failed(tmp_path: Path, journal: Journal) -> None:
    folder = make_folder(tmp_path)
    running, job = start(journal, folder)
    job.source.unlink()
    OutcomeRecorder(journal, lambda: RETRY).record(
        running, Outcome(job, None, FileNotFoundError(2, "gone"), {})
    )
    assert journal.get(folder.name, "a.jpg") is None
    assert not (tmp_path / "out-errors").exists()
