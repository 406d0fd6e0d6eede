"""Retrying failed files: rows go back to pending with a fresh budget; others are left alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.journal.retry import RetryTarget, retry_failed
from daemon.journal.store import Fingerprint, Journal, profile_hash

FP = Fingerprint(size=1, mtime_ns=1, profile_hash=profile_hash("raw"), pipeline_version="1")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.sqlite")
    yield j
    j.close()


def _fail(journal: Journal, folder: str, path: str) -> int:
    journal.offer(folder, path, FP)
    entry = journal.get(folder, path)
    assert entry is not None
    journal.mark_failed(entry.id, "CorruptInput", "truncated")
    return entry.id


def test_a_retried_file_is_pending_due_now_with_its_retry_budget_back(journal: Journal) -> None:
    _fail(journal, "hot", "a.jpg")
    retried = retry_failed(journal, RetryTarget("hot", "a.jpg"))
    assert [(e.path, e.last_error) for e in retried] == [("a.jpg", "truncated")]
    entry = journal.get("hot", "a.jpg")
    assert entry is not None
    assert (entry.state, entry.attempts, entry.next_attempt, entry.last_error) == ("pending", 0, 0, None)
    assert journal.claim(["hot"]) is not None


def test_a_folder_target_retries_only_that_folder_and_a_directory_only_what_is_below_it(
    journal: Journal,
) -> None:
    files = [("hot", "a.jpg"), ("hot", "shoot/b.jpg"), ("hot", "shootout.jpg"), ("cold", "c.jpg")]
    for folder, path in files:
        _fail(journal, folder, path)
    assert [e.path for e in retry_failed(journal, RetryTarget("hot", "shoot"))] == ["shoot/b.jpg"]
    assert sorted(e.path for e in retry_failed(journal, RetryTarget("hot"))) == ["a.jpg", "shootout.jpg"]
    assert [e.path for e in retry_failed(journal, RetryTarget())] == ["c.jpg"]
    assert journal.failed() == []


def test_only_failed_rows_are_touched(journal: Journal) -> None:
    journal.offer("hot", "done.jpg", FP)
    done = journal.get("hot", "done.jpg")
    assert done is not None
    journal.mark_done(done.id, "out/done.png")
    failed_id = _fail(journal, "hot", "x.jpg")
    assert journal.requeue_failed([done.id, failed_id]) == [failed_id]
    after = journal.get_by_id(done.id)
    assert after is not None and after.state == "done"
    assert retry_failed(journal, RetryTarget()) == []


def test_failures_are_listed_newest_first_in_pages(journal: Journal) -> None:
    ids = [_fail(journal, "hot", f"{n}.jpg") for n in range(5)]
    assert [e.id for e in journal.failed(limit=2)] == ids[::-1][:2]
    assert [e.id for e in journal.failed(limit=2, offset=4)] == [ids[0]]
    assert journal.failed("cold") == []


def test_done_since_counts_files_finished_after_the_cutoff_per_folder(journal: Journal) -> None:
    journal.offer("hot", "a.jpg", FP)
    entry = journal.get("hot", "a.jpg")
    assert entry is not None
    journal.mark_done(entry.id, None)
    assert journal.done_since(0) == {"hot": 1}
    assert journal.done_since(entry.updated_at + 3600) == {}
