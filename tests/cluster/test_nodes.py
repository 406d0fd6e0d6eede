"""Several real ``hotmatte run`` nodes on one PostgreSQL and one folder (daemon/journal/cluster.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from tests.cluster.nodes import drop, events, node_config, start_nodes, states, wait_all_done
from tests.conftest import HOTMATTE, REPO
from tests.pg_server import ThrowAwayServer, fresh_database
from tests.service_harness import temporaries

COUNT = 9


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def outputs(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "hot-out").iterdir() if not p.name.startswith("."))


def test_three_nodes_share_a_burst_each_file_once_and_status_shows_every_node(
    tmp_path: Path, database: str, jpeg: bytes
) -> None:
    daemons = start_nodes(tmp_path, database, ["n1", "n2", "n3"])
    try:
        names = drop(tmp_path / "hot", jpeg, COUNT)
        wait_all_done(database, COUNT, daemons)
        time.sleep(1.0)  # nothing more may happen
        # Three watchers saw every file; each was queued, claimed and finished once.
        assert events(database, "queued") == dict.fromkeys(names, 1)
        # A claim given straight back (the node's pipeline was full) is no processing.
        assert events(database, "claimed") - events(database, "unclaimed") == dict.fromkeys(names, 1)
        assert events(database, "done") == dict.fromkeys(names, 1)
        assert sorted(p for d in daemons for p in d.paths("started")) == names
        assert sum(len(d.named("done")) for d in daemons) == COUNT
        assert sum(len(d.named("queued")) for d in daemons) == COUNT
        assert outputs(tmp_path) == sorted(n.replace(".jpg", ".png") for n in names)
        assert temporaries(tmp_path / "hot-out") == []
        config = tmp_path / "n1" / "c.yaml"
        shown = subprocess.run(
            [*HOTMATTE, "status", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        for node in ("n1", "n2", "n3"):
            assert any(line.startswith(node) and "alive" in line for line in shown.stdout.splitlines()), (
                shown.stdout
            )
        as_json = subprocess.run(
            [*HOTMATTE, "status", "--json", "--config", str(config)], cwd=REPO, capture_output=True, text=True
        )
        document = json.loads(as_json.stdout)
        assert sorted(n["node"] for n in document["nodes"]) == ["n1", "n2", "n3"]
        assert sum(n["done"] for n in document["nodes"]) == COUNT
        assert document["folders"][0]["done"] == COUNT
    finally:
        for daemon in daemons:
            daemon.terminate()


def test_a_node_killed_mid_file_its_file_ends_once_on_another_node(
    tmp_path: Path, database: str, jpeg: bytes
) -> None:
    daemons = start_nodes(tmp_path, database, ["n1", "n2", "n3"])
    try:
        names = drop(tmp_path / "hot", jpeg, COUNT)
        victim = next(iter(d for d in daemons if d.named("started")), None)
        while victim is None:
            time.sleep(0.02)
            victim = next(iter(d for d in daemons if d.named("started")), None)
        killed_at = time.monotonic()
        victim.kill()  # SIGKILL, mid-burst, with a file started
        time.sleep(0.5)  # the log readers catch the last lines it wrote
        unfinished = set(victim.paths("started")) - set(victim.paths("done"))
        victim_name = f"n{daemons.index(victim) + 1}"
        survivors = [d for d in daemons if d is not victim]
        wait_all_done(database, COUNT, survivors)
        recovered = time.monotonic() - killed_at
        time.sleep(1.0)
        assert events(database, "done") == dict.fromkeys(names, 1)
        assert outputs(tmp_path) == sorted(n.replace(".jpg", ".png") for n in names)
        # The killed node's temporary (if it died mid-write) stays hidden; it is never an output.
        taken_back = set(events(database, "stalled"))
        # Every file it had started came back; so may files it had claimed but not yet started.
        # Only the killed node's files were taken back.
        assert unfinished <= taken_back
        with psycopg.connect(database) as conn:
            claimed_by_victim = {
                bytes(r[0]).decode()
                for r in conn.execute(
                    "SELECT path FROM hotmatte_events WHERE kind = 'claimed' AND node = %s", (victim_name,)
                )
            }
        assert taken_back <= claimed_by_victim - set(victim.paths("done"))
        print(f"recovery after kill -9: {recovered:.1f} s for {len(unfinished)} file(s)")
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.terminate()


def test_a_postgresql_restart_mid_run_loses_and_duplicates_nothing_and_nodes_pause_meanwhile(
    tmp_path: Path, own_server: ThrowAwayServer, jpeg: bytes
) -> None:
    with fresh_database(own_server.conninfo) as database:
        # Long enough a grace that the outage does not make the nodes take each other's files.
        daemons = start_nodes(tmp_path, database, ["n1", "n2"], stalled_after_seconds=30)
        try:
            names = drop(tmp_path / "hot", jpeg, COUNT)
            while sum(len(d.named("done")) for d in daemons) < 2:
                time.sleep(0.05)
            own_server.stop()
            time.sleep(3.0)  # every node meets the outage
            own_server.start()
            wait_all_done(database, COUNT, daemons)
            time.sleep(1.0)
            assert events(database, "done") == dict.fromkeys(names, 1)
            assert states(database) == {"done": COUNT}
            assert outputs(tmp_path) == sorted(n.replace(".jpg", ".png") for n in names)
            paused = [d for d in daemons if d.named("database_unavailable")]
            assert paused, "no node noticed the outage"
            for daemon in paused:
                daemon.wait_for("database_back")
                lost = daemon.events.index(daemon.named("database_unavailable")[0])
                back = daemon.events.index(daemon.named("database_back")[0])
                assert not [e for e in daemon.events[lost:back] if e["event"] == "started"], (
                    "took work meanwhile"
                )
        finally:
            for daemon in daemons:
                daemon.terminate()


def test_journal_migrate_copies_a_sqlite_journal_once(tmp_path: Path, database: str) -> None:
    from daemon.journal.store import Fingerprint, Journal

    config = node_config(tmp_path, "n1", database)
    sqlite = Journal.open(tmp_path / "n1" / "state" / "journal.sqlite")
    fp = Fingerprint(1, 2, "p", "v")
    for name in ("done.jpg", "failed.jpg", "pending.jpg"):
        sqlite.offer("hot", name, fp)
    done, failed = sqlite.claim(["hot"]), sqlite.claim(["hot"])
    assert done is not None and failed is not None
    sqlite.mark_done(done.id, "/out/done.png")
    sqlite.mark_failed(failed.id, "CorruptInput", "truncated")
    sqlite.close()
    migrate = [*HOTMATTE, "journal", "migrate", "--config", str(config)]
    first = subprocess.run(migrate, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "copied 3 file(s)" in first.stdout and "(1 queued again)" in first.stdout
    second = subprocess.run(migrate, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "copied 0 file(s)" in second.stdout and "3 already in the cluster" in second.stdout
    assert states(database) == {"done": 1, "failed": 1, "pending": 1}
    with psycopg.connect(database) as conn:
        todo = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    assert todo == (1,)


def test_a_node_that_cannot_reach_the_database_at_start_exits_1_for_systemd_to_restart(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = node_config(tmp_path, "n1", f"postgresql://hotmatte@127.0.0.1:{port}/hotmatte")
    result = subprocess.run(
        [*HOTMATTE, "run", "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "hotmatte: cannot reach the cluster database postgresql://hotmatte@127.0.0.1:"
    )
    assert len(result.stderr.strip().splitlines()) == 1
