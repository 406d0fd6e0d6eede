"""daemon/journal/cluster.py against a real PostgreSQL: queued once, claimed once, fenced outcomes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from daemon.config import Cluster
from daemon.journal.cluster import ClusterJournal
from daemon.journal.store import Fingerprint

FP = Fingerprint(100, 1, "p", "v")


def settings(database: str, node: str, **extra: float) -> Cluster:
    return Cluster(database=database, node=node, **extra)


@pytest.fixture
def nodes(database: str, tmp_path: Path) -> Iterator[list[ClusterJournal]]:
    opened = [
        ClusterJournal(
            settings(database, f"n{i}", heartbeat_seconds=0.2, stalled_after_seconds=1.0), tmp_path / f"{i}"
        )
        for i in range(3)
    ]
    yield opened
    for journal in opened:
        journal.close()


def events(database: str, kind: str) -> list[tuple[int, str]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT file_id, node FROM hotmatte_events WHERE kind = %s ORDER BY id", (kind,))
        return [(r[0], r[1]) for r in rows]


def test_the_same_file_offered_by_three_nodes_is_queued_once(
    database: str, nodes: list[ClusterJournal]
) -> None:
    accepted = [journal.offer("hot", "a.jpg", FP) for journal in nodes]
    assert accepted.count(True) == 1
    with psycopg.connect(database) as conn:
        jobs = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    assert jobs == (1,)
    assert len(events(database, "queued")) == 1
    assert all(journal.is_settled("hot", "a.jpg", FP) for journal in nodes)


def test_a_queued_file_is_claimed_by_exactly_one_node(database: str, nodes: list[ClusterJournal]) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        nodes[0].offer("hot", name, FP)
    claimed = []
    for journal in nodes:
        while (entry := journal.claim(["hot"])) is not None:
            claimed.append(entry)
    assert sorted(e.path for e in claimed) == ["a.jpg", "b.jpg", "c.jpg"]
    assert nodes[0].claim(["hot"]) is None
    for journal in nodes:
        for entry in claimed:
            if entry.id in journal._claims:  # whichever node holds it finishes it
                journal.mark_done(entry.id, f"/out/{entry.path}")
    assert nodes[1].counts() == {"hot": {"pending": 0, "running": 0, "done": 3, "failed": 0}}
    assert len(events(database, "done")) == 3


def test_a_silent_nodes_file_is_taken_back_and_its_late_outcome_is_fenced(
    database: str, tmp_path: Path
) -> None:
    quick = {"heartbeat_seconds": 0.2, "stalled_after_seconds": 1.0}
    dying = ClusterJournal(settings(database, "dying", **quick), tmp_path / "d")
    alive = ClusterJournal(settings(database, "alive", **quick), tmp_path / "a")
    try:
        dying.offer("hot", "a.jpg", FP)
        taken = dying.claim(["hot"])
        assert taken is not None
        dying._stop.set()  # its heartbeats stop, as when the process is killed
        deadline = time.monotonic() + 30
        while (again := alive.claim(["hot"])) is None:
            assert time.monotonic() < deadline, "never taken back"
            time.sleep(0.2)
        assert again.id == taken.id and again.crashes == 1
        dying.mark_done(taken.id, "/out/stale")  # the presumed-dead node finishes late: fenced
        assert alive.get_by_id(taken.id).state == "running"  # type: ignore[union-attr]
        alive.mark_done(again.id, "/out/a")
        assert alive.get_by_id(taken.id).output == "/out/a"  # type: ignore[union-attr]
        assert [k for _, k in events_of(database)] == [
            "queued",
            "claimed",
            "stalled",
            "claimed",
            "stale",
            "done",
        ]
    finally:
        dying.close()
        alive.close()


def events_of(database: str) -> list[tuple[int, str]]:
    with psycopg.connect(database) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT file_id, kind FROM hotmatte_events ORDER BY id")]


def test_a_new_version_waits_until_the_node_running_the_old_one_is_done(
    database: str, nodes: list[ClusterJournal]
) -> None:
    old_node, new_node = nodes[0], nodes[1]
    old_node.offer("hot", "a.jpg", FP)
    running = old_node.claim(["hot"])
    assert running is not None
    newer = Fingerprint(200, 2, "p", "v")
    assert new_node.offer("hot", "a.jpg", newer)  # changed on the NAS while node 0 runs it
    assert new_node.claim(["hot"]) is None  # the file's lock: one version at a time in the cluster
    assert old_node.get_by_id(running.id) is None  # node 0's outcome arrives: superseded
    again = new_node.claim(["hot"])
    assert again is not None and again.fingerprint == newer


def test_pruning_a_finished_file_takes_its_history_and_finished_jobs_with_it(
    database: str, nodes: list[ClusterJournal]
) -> None:
    journal = nodes[0]
    journal.offer("hot", "a.jpg", FP)
    journal.offer("hot", "a.jpg", Fingerprint(200, 2, "p", "v"))  # a new version: the first job is left over
    entry = journal.claim(["hot"])
    assert entry is not None
    journal.mark_done(entry.id, "/out/a.png")
    assert journal.prune(journal.finished_before(time.time() + 1)) == 1
    journal.vacuum()
    with psycopg.connect(database) as conn:
        left = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            for table in ("hotmatte_files", "hotmatte_events", "procrastinate_jobs")
        ]
    assert left == [(0,), (0,), (0,)]
