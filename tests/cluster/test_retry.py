"""The operator's retry in cluster mode (ClusterJournal.requeue_failed, open_reader), on a real PostgreSQL.

A failed file put back by a reader that is not a worker (the console, ``hotmatte retry``) must
get exactly one new Procrastinate job that exactly one node takes, and be done exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from daemon.config import Cluster, parse_config
from daemon.errors import DatabaseUnavailable
from daemon.journal.cluster import ClusterJournal
from daemon.journal.opening import open_reader
from daemon.journal.retry import RetryTarget, retry_failed
from daemon.journal.store import Entry, Fingerprint
from tests.pg_server import ThrowAwayServer

FP = Fingerprint(100, 1, "p", "v")


@pytest.fixture
def nodes(database: str, tmp_path: Path) -> Iterator[list[ClusterJournal]]:
    quick = Cluster(database=database, node="n0", heartbeat_seconds=0.2, stalled_after_seconds=1.0)
    opened = [ClusterJournal(quick.model_copy(update={"node": f"n{i}"}), tmp_path / f"{i}") for i in range(3)]
    yield opened
    for journal in opened:
        journal.close()


@pytest.fixture
def reader(database: str, tmp_path: Path) -> Iterator[ClusterJournal]:
    journal = ClusterJournal(Cluster(database=database, node="console"), tmp_path / "r", worker=False)
    yield journal
    journal.close()


def fail_one(node: ClusterJournal, path: str = "a.jpg") -> Entry:
    node.offer("hot", path, FP)
    entry = node.claim(["hot"])
    assert entry is not None and entry.path == path
    node.mark_failed(entry.id, "CorruptInput", "truncated")
    return entry


def claim_everywhere(nodes: list[ClusterJournal]) -> list[tuple[ClusterJournal, Entry]]:
    taken = []
    for node in nodes:
        while (entry := node.claim(["hot"])) is not None:
            taken.append((node, entry))
    return taken


def job_statuses(database: str) -> list[str]:
    with psycopg.connect(database) as conn:
        return [r[0] for r in conn.execute("SELECT status::text FROM procrastinate_jobs ORDER BY id")]


def kinds(database: str) -> list[str]:
    with psycopg.connect(database) as conn:
        return [r[0] for r in conn.execute("SELECT kind FROM hotmatte_events ORDER BY id")]


def test_a_failed_file_requeued_by_a_reader_is_taken_by_exactly_one_node_and_done_once(
    database: str, nodes: list[ClusterJournal], reader: ClusterJournal
) -> None:
    failed = fail_one(nodes[0])
    assert [e.id for e in reader.failed()] == [failed.id]
    retried = retry_failed(reader, RetryTarget("hot", "a.jpg"))
    assert [(e.id, e.last_error) for e in retried] == [(failed.id, "truncated")]
    again = reader.get_by_id(failed.id)
    assert again is not None and again.state == "pending" and again.attempts == 0 and again.last_error is None
    assert job_statuses(database) == ["failed", "todo"]  # a new job; the failed one stays as history

    taken = claim_everywhere(nodes)
    assert [e.id for _, e in taken] == [failed.id]  # exactly one node took it
    node, entry = taken[0]
    node.mark_done(entry.id, "/out/a.png")
    assert reader.counts() == {"hot": {"pending": 0, "running": 0, "done": 1, "failed": 0}}
    assert reader.done_since(time.time() - 60) == {"hot": 1}
    assert kinds(database) == ["queued", "claimed", "failed", "requeued", "claimed", "done"]
    assert job_statuses(database) == ["failed", "succeeded"]


def test_two_retries_at_once_requeue_a_file_once(
    database: str, nodes: list[ClusterJournal], reader: ClusterJournal
) -> None:
    failed = fail_one(nodes[0])
    assert nodes[1].requeue_failed([failed.id]) == [failed.id]
    assert reader.requeue_failed([failed.id]) == []  # no longer failed: left alone
    assert job_statuses(database) == ["failed", "todo"]
    assert len(claim_everywhere(nodes)) == 1


def test_a_file_changed_since_it_failed_is_not_requeued_and_its_new_version_runs_once(
    database: str, nodes: list[ClusterJournal], reader: ClusterJournal
) -> None:
    failed = fail_one(nodes[0])
    assert nodes[1].offer("hot", "a.jpg", Fingerprint(200, 2, "p", "v"))  # the operator re-exported it
    assert reader.requeue_failed([failed.id]) == []
    taken = claim_everywhere(nodes)
    assert len(taken) == 1 and taken[0][1].fingerprint.size == 200


def test_failed_rows_are_paged_newest_first_per_folder(nodes: list[ClusterJournal]) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        fail_one(nodes[0], name)
    assert [e.path for e in nodes[1].failed()] == ["c.jpg", "b.jpg", "a.jpg"]
    assert [e.path for e in nodes[1].failed("hot", limit=2, offset=1)] == ["b.jpg", "a.jpg"]
    assert nodes[1].failed("elsewhere") == []


def test_a_reader_gives_up_on_a_database_that_went_away_and_reconnects_once_it_is_back(
    own_server: ThrowAwayServer, tmp_path: Path
) -> None:
    cluster = f"cluster:\n  database: '{own_server.conninfo}'\n  node: n1\n"
    config = parse_config(f"journal: {tmp_path / 'journal.sqlite'}\n{cluster}", tmp_path)
    journal = open_reader(config, give_up_after=1.0)
    try:
        assert journal.counts() == {}
        own_server.stop()
        with pytest.raises(DatabaseUnavailable):
            journal.counts()
        own_server.start()
        assert journal.counts() == {}
    finally:
        journal.close()
    assert not (tmp_path / "journal.sqlite").exists()  # cluster mode: no SQLite journal is made
