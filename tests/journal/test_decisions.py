"""The journal's part of the console: browsing rows, and recording each Review decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.journal.store import REJECTED, Fingerprint, Journal, profile_hash

FP = Fingerprint(size=1, mtime_ns=1, profile_hash=profile_hash("raw"), pipeline_version="1")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.sqlite")
    yield j
    j.close()


def _in_review(journal: Journal, path: str, confidence: float = 0.4) -> int:
    journal.offer("hot", path, FP)
    entry = journal.claim(["hot"])
    assert entry is not None
    journal.mark_done(entry.id, f"/review/{path}", confidence, review=True)
    return entry.id


def test_browse_filters_by_folder_state_and_search_and_pages(journal: Journal) -> None:
    review_id = _in_review(journal, "odd%_name.jpg")
    for i in range(7):
        journal.offer("hot", f"shoot/img_{i}.jpg", FP)
    journal.offer("cold", "other_1.jpg", FP)
    rows, total = journal.browse(folder="hot", state="pending", limit=3, offset=0)
    assert total == 7 and len(rows) == 3
    rest, _ = journal.browse(folder="hot", state="pending", limit=3, offset=6)
    assert len(rest) == 1
    assert journal.browse(search="IMG_3")[1] == 1
    assert journal.browse(search="%_")[0][0].id == review_id  # wildcards are literal
    reviewed, count = journal.browse(state="review")
    assert count == 1 and reviewed[0].review and reviewed[0].confidence == pytest.approx(0.4)
    assert journal.browse(folder="cold")[1] == 1


def test_approve_keeps_the_file_done_with_its_new_output_and_records_the_decision(journal: Journal) -> None:
    entry_id = _in_review(journal, "a.jpg")
    assert journal.decide(entry_id, "approve", output="/out/a.png")
    entry = journal.get_by_id(entry_id)
    assert entry is not None and (entry.state, entry.review, entry.output) == ("done", False, "/out/a.png")
    [decision] = journal.decisions(entry_id)
    assert (decision.decision, decision.path, decision.output) == ("approve", "a.jpg", "/out/a.png")
    assert journal.in_review() == {}


def test_a_decided_file_cannot_be_decided_twice(journal: Journal) -> None:
    entry_id = _in_review(journal, "a.jpg")
    assert journal.decide(entry_id, "approve", output="/out/a.png")
    assert not journal.decide(entry_id, "reject")
    assert len(journal.decisions(entry_id)) == 1


def test_reject_fails_the_file_saying_the_operator_rejected_it(journal: Journal) -> None:
    entry_id = _in_review(journal, "b.jpg")
    assert journal.decide(entry_id, "reject")
    entry = journal.get_by_id(entry_id)
    assert entry is not None
    assert (entry.state, entry.error_class, entry.last_error) == (
        "failed",
        REJECTED,
        "rejected by the operator",
    )
    assert journal.decisions()[0].decision == "reject"


def test_rerun_puts_the_file_back_to_pending_with_the_chosen_profile(journal: Journal) -> None:
    entry_id = _in_review(journal, "c.jpg")
    assert journal.decide(entry_id, "rerun", profile="product")
    entry = journal.claim(["hot"])
    assert entry is not None and entry.id == entry_id and entry.profile == "product"
    assert journal.decisions(entry_id)[0].profile == "product"


def test_a_row_not_in_review_takes_no_decision(journal: Journal) -> None:
    journal.offer("hot", "d.jpg", FP)
    entry = journal.get("hot", "d.jpg")
    assert entry is not None
    assert not journal.decide(entry.id, "approve", output="/x")
    assert journal.decisions() == []


def test_a_journal_of_an_older_release_gains_the_profile_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    Journal.open(path).close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE files DROP COLUMN profile")
    db.close()
    journal = Journal.open(path)
    journal.offer("hot", "e.jpg", FP)
    entry = journal.get("hot", "e.jpg")
    assert entry is not None and entry.profile is None
    journal.close()
