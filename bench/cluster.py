"""Cluster mode: what coordination costs per file, 1,000 files through 3 nodes, recovery after kill -9.

    python bench/cluster.py [--files 1000] [--database postgresql://...]

1. **Coordination overhead**: the journal's work for one file (offer → claim → done) on the
   PostgreSQL journal (one node, no pipeline), in database round trips and milliseconds, next to
   the SQLite journal doing the same.
2. **1,000 files through 3 real ``hotmatte run`` nodes** on one folder, at a tiny model size and
   small photos (coordination, not inference, is under test). One node is killed with SIGKILL
   part-way through, with the default heartbeat settings; every file must end done exactly once
   (``done`` events per file, outputs on disk) and the killed node's files must come back.
3. **Recovery time**: from the kill until the last file the killed node held is done elsewhere.

The database: ``--database``, else ``HOTMATTE_TEST_DATABASE``, else 127.0.0.1:5432, else a
throw-away server (as the tests do, ``tests/pg_server.py``). Results: ``bench/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from daemon.config import Cluster  # noqa: E402
from daemon.journal.cluster import ClusterJournal  # noqa: E402
from daemon.journal.store import Fingerprint, Journal  # noqa: E402
from tests.cluster.nodes import events, states  # noqa: E402
from tests.conftest import photo  # noqa: E402
from tests.pg_server import fresh_database, server_conninfo  # noqa: E402
from tests.service_harness import Daemon, folder_settings, write_config  # noqa: E402

RESULTS = REPO / "bench" / "results" / "cluster.json"
MODEL_SIZE = 64
PHOTO_SIZE = (96, 64)


def journal_cycle(journal: ClusterJournal | Journal, files: int) -> dict[str, float]:
    """offer → claim → mark_done for ``files`` files; ms per step and per file."""
    fp = Fingerprint(1000, 1, "p", "v")
    steps: dict[str, list[float]] = {"offer": [], "claim": [], "done": []}
    for i in range(files):
        t0 = time.perf_counter()
        journal.offer("hot", f"f{i:05d}.jpg", fp)
        t1 = time.perf_counter()
        entry = journal.claim(["hot"])
        t2 = time.perf_counter()
        assert entry is not None
        journal.mark_done(entry.id, "/out/x.png")
        t3 = time.perf_counter()
        steps["offer"].append(t1 - t0)
        steps["claim"].append(t2 - t1)
        steps["done"].append(t3 - t2)
    result = {f"{k}_ms": round(statistics.median(v) * 1000, 3) for k, v in steps.items()}
    result["per_file_ms"] = round(sum(result.values()), 3)
    return result


def overhead(admin: str, files: int) -> dict[str, Any]:
    with fresh_database(admin) as database, tempfile.TemporaryDirectory() as tmp:
        pg = ClusterJournal(Cluster(database=database, node="bench"), Path(tmp) / "j")
        try:
            before = pg.round_trips
            cluster = journal_cycle(pg, files)
            cluster["round_trips_per_file"] = round((pg.round_trips - before) / files, 2)
        finally:
            pg.close()
        sqlite = Journal.open(Path(tmp) / "journal.sqlite")
        try:
            local = journal_cycle(sqlite, files)
        finally:
            sqlite.close()
    return {"files": files, "postgresql": cluster, "sqlite": local}


def small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo("astronaut")).resize(PHOTO_SIZE).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def three_nodes(admin: str, files: int, kill_after: int) -> dict[str, Any]:
    jpeg = small_jpeg()
    with fresh_database(admin) as database, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        folder = folder_settings(tmp, "hot")
        daemons = []
        for node in ("n1", "n2", "n3"):
            (tmp / node).mkdir()
            config = write_config(
                tmp / node / "c.yaml",
                [folder],
                model_size=MODEL_SIZE,
                cluster={"database": database, "node": node},  # default heartbeat and stalled timeout
            )
            daemons.append(Daemon(config))
        for daemon in daemons:
            daemon.wait_for("start", timeout=300)
        started = time.monotonic()
        for i in range(files):
            (tmp / "hot" / f"f{i:05d}.jpg").write_bytes(jpeg)
        victim = daemons[2]
        while sum(len(d.named("done")) for d in daemons) < kill_after:
            time.sleep(0.05)
        victim.kill()
        killed = time.monotonic()
        held = set(victim.paths("started")) - set(victim.paths("done"))
        survivors = daemons[:2]
        recovered: float | None = None
        deadline = time.monotonic() + 1800
        while states(database).get("done", 0) < files and time.monotonic() < deadline:
            if recovered is None and held <= {p for d in survivors for p in d.paths("done")}:
                recovered = time.monotonic() - killed
            time.sleep(0.2)
        wall = time.monotonic() - started
        if recovered is None and held <= {p for d in survivors for p in d.paths("done")}:
            recovered = time.monotonic() - killed
        done_events = events(database, "done")
        outputs = [p for p in (tmp / "hot-out").iterdir() if not p.name.startswith(".")]
        per_node = {node: len(d.named("done")) for node, d in zip(("n1", "n2", "n3"), daemons, strict=True)}
        for daemon in survivors:
            daemon.terminate()
        return {
            "files": files,
            "model_size": MODEL_SIZE,
            "photo": list(PHOTO_SIZE),
            "wall_seconds": round(wall, 1),
            "files_per_second": round(files / wall, 2),
            "done_files": len(done_events),
            "files_done_twice": sum(1 for n in done_events.values() if n > 1),
            "lost": files - len(done_events),
            "outputs_on_disk": len(outputs),
            "done_per_node": per_node,
            "killed_node": "n3",
            "killed_after_done": kill_after,
            "files_held_by_killed_node": len(held),
            "taken_back": sum(events(database, "stalled").values()),
            "stale_outcomes": sum(events(database, "stale").values()),
            "recovery_seconds": None if recovered is None else round(recovered, 1),
            "heartbeat_seconds": Cluster.model_fields["heartbeat_seconds"].default,
            "stalled_after_seconds": Cluster.model_fields["stalled_after_seconds"].default,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--overhead-files", type=int, default=300)
    parser.add_argument("--database", help="admin connection string (default: as the tests find one)")
    args = parser.parse_args()
    admin, server = (args.database, None) if args.database else server_conninfo()
    try:
        result = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": f"{os.cpu_count()} CPUs",
            "overhead": overhead(admin, args.overhead_files),
            "three_nodes": three_nodes(admin, args.files, kill_after=args.files // 4),
        }
    finally:
        if server is not None:
            server.destroy()
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
