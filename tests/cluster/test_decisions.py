"""The operator's Review decisions and the Files page's browse on the cluster journal (real PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from daemon.config import Cluster
from daemon.journal.cluster import ClusterJournal
from daemon.journal.store import REJECTED, Entry, Fingerprint

FP = Fingerprint(100, 1, "p", "v")
QUICK = {"heartbeat_seconds": 0.2, "stalled_after_seconds": 30.0}


@pytest.fixture
def nodes(database: str, tmp_path: Path) -> Iterator[list[ClusterJournal]]:
    """Two worker nodes."""
    opened = [
        ClusterJournal(Cluster(database=database, node=f"n{i}", **QUICK), tmp_path / f"{i}") for i in range(2)
    ]
    yield opened
    for journal in opened:
        journal.close()


@pytest.fixture
def console(database: str, tmp_path: Path) -> Iterator[ClusterJournal]:
    """A reader that is not a worker, as the console opens it."""
    journal = ClusterJournal(Cluster(database=database, node="n0"), tmp_path / "console", worker=False)
    yield journal
    journal.close()


def in_review(node: ClusterJournal, name: str, confidence: float = 0.4) -> Entry:
    """Offer ``name``, claim it on ``node`` and finish it with its result in review."""
    assert node.offer("hot", name, FP)
    entry = node.claim(["hot"])
    assert entry is not None and entry.path == name
    node.mark_done(entry.id, f"/review/{name}", confidence=confidence, review=True)
    done = node.get_by_id(entry.id)
    assert done is not None and done.state == "done" and done.review and done.confidence == confidence
    return done


def todo_jobs(database: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    assert row is not None
    return int(row[0])


def test_approve_leaves_the_file_done_out_of_review_with_its_new_output(
    nodes: list[ClusterJournal], console: ClusterJournal
) -> None:
    entry = in_review(nodes[0], "a.jpg")
    assert console.decide(entry.id, "approve", output="/out/a.png")
    after = console.get_by_id(entry.id)
    assert after is not None and after.state == "done" and not after.review and after.output == "/out/a.png"
    assert console.in_review() == {}
    [record] = console.decisions()
    assert (record.file_id, record.path, record.decision, record.output) == (
        entry.id,
        "a.jpg",
        "approve",
        "/out/a.png",
    )
    assert todo_jobs(console.settings.database) == 0  # nothing to run again


def test_reject_fails_the_file_as_rejected_by_the_operator(
    nodes: list[ClusterJournal], console: ClusterJournal
) -> None:
    entry = in_review(nodes[0], "a.jpg")
    assert console.decide(entry.id, "reject", output="/errors/a.jpg.error.json")
    after = console.get_by_id(entry.id)
    assert after is not None and after.state == "failed" and not after.review
    assert after.error_class == REJECTED and after.last_error == "rejected by the operator"
    assert [e.id for e in console.failed()] == [entry.id]
    assert [d.decision for d in console.decisions(entry.id)] == ["reject"]


def test_rerun_is_run_again_by_exactly_one_node_with_the_chosen_profile(
    database: str, nodes: list[ClusterJournal], console: ClusterJournal
) -> None:
    entry = in_review(nodes[0], "a.jpg")
    assert entry.profile is None
    assert console.decide(entry.id, "rerun", profile="product")
    pending = console.get_by_id(entry.id)
    assert pending is not None and pending.state == "pending" and pending.profile == "product"
    assert pending.output is None and pending.confidence is None and not pending.review
    assert todo_jobs(database) == 1  # one new job, in the decision's transaction

    claimed = [e for e in (node.claim(["hot"]) for node in (*nodes, *nodes)) if e is not None]
    assert len(claimed) == 1  # exactly one node takes it
    [again] = claimed
    assert again.id == entry.id and again.profile == "product"  # the loop runs entry.profile
    holder = next(n for n in nodes if again.id in n._claims)
    holder.mark_done(again.id, "/out/a.png", confidence=0.9)
    final = console.get_by_id(entry.id)
    assert final is not None and final.state == "done" and final.profile == "product"
    assert [(d.decision, d.profile) for d in console.decisions()] == [("rerun", "product")]


def test_a_file_cannot_be_decided_twice(nodes: list[ClusterJournal], console: ClusterJournal) -> None:
    entry = in_review(nodes[0], "a.jpg")
    assert console.decide(entry.id, "approve", output="/out/a.png")
    assert not console.decide(entry.id, "reject")
    assert not nodes[1].decide(entry.id, "rerun", profile="product")
    assert [d.decision for d in console.decisions()] == ["approve"]


def test_two_operators_deciding_at_once_record_one_decision(
    database: str, tmp_path: Path, nodes: list[ClusterJournal]
) -> None:
    entry = in_review(nodes[0], "a.jpg")
    consoles = [
        ClusterJournal(Cluster(database=database, node=f"c{i}"), tmp_path / f"c{i}", worker=False)
        for i in range(4)
    ]
    results: list[bool] = []
    start = threading.Barrier(len(consoles))

    def decide(journal: ClusterJournal) -> None:
        start.wait()
        results.append(journal.decide(entry.id, "rerun", profile="product"))

    threads = [threading.Thread(target=decide, args=(c,)) for c in consoles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert sorted(results) == [False, False, False, True]
        assert len(consoles[0].decisions()) == 1
        assert todo_jobs(database) == 1
    finally:
        for c in consoles:
            c.close()


def test_a_file_offered_again_is_no_longer_decided(
    nodes: list[ClusterJournal], console: ClusterJournal
) -> None:
    entry = in_review(nodes[0], "a.jpg")
    assert nodes[1].offer("hot", "a.jpg", Fingerprint(200, 2, "p", "v"))  # a new version: a new row
    assert not console.decide(entry.id, "approve")
    assert console.decisions() == []


def test_browse_pages_filters_and_searches_rows_newest_first(
    nodes: list[ClusterJournal], console: ClusterJournal
) -> None:
    reviewed = in_review(nodes[0], "Shoot/Model-A.jpg")
    names = ["shoot/b.jpg", "other/c.jpg", "caf\u00e9.jpg", "raw\udcff.jpg"]  # the last is not UTF-8
    for name in names:
        assert nodes[0].offer("hot", name, FP)
    assert nodes[1].offer("cold", "d.jpg", FP)

    rows, total = console.browse(limit=2)
    assert total == 6 and [e.path for e in rows] == ["d.jpg", "raw\udcff.jpg"]
    rows, _ = console.browse(limit=2, offset=4)
    assert [e.path for e in rows] == ["shoot/b.jpg", "Shoot/Model-A.jpg"]
    assert console.browse(folder="cold")[1] == 1
    assert [e.id for e in console.browse(state="review")[0]] == [reviewed.id]
    assert console.browse(state="done")[1] == 1 and console.browse(state="pending")[1] == 5
    assert {e.path for e in console.browse(search="SHOOT/")[0]} == {"shoot/b.jpg", "Shoot/Model-A.jpg"}
    assert [e.path for e in console.browse(search="\u00e9")[0]] == ["caf\u00e9.jpg"]
    assert [e.path for e in console.browse(search="raw\udcff")[0]] == ["raw\udcff.jpg"]
    assert console.browse(search="%")[1] == 0 and console.browse(search="_")[1] == 0
    [found] = console.browse(state="review", search="model")[0]
    assert found.confidence == 0.4 and found.review


def test_an_older_cluster_database_gets_the_profile_column_at_the_next_open(
    database: str, tmp_path: Path, nodes: list[ClusterJournal]
) -> None:
    nodes[0].offer("hot", "a.jpg", FP)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE hotmatte_files DROP COLUMN profile")
        conn.execute("DROP TABLE hotmatte_decisions")
    reopened = ClusterJournal(Cluster(database=database, node="late"), tmp_path / "late", worker=False)
    try:
        entry = reopened.get("hot", "a.jpg")
        assert entry is not None and entry.profile is None
        with psycopg.connect(database) as conn:
            column = conn.execute(
                "SELECT 1 FROM information_schema.columns"
                " WHERE table_name = 'hotmatte_files' AND column_name = 'profile'"
            ).fetchone()
        assert column is not None
        assert reopened.decisions() == []
    finally:
        reopened.close()
