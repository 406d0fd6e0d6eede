"""``/metrics``' queue counts in cluster mode: read through a reader of the shared database,
and a scrape stays whole (the queue left out) while the server is away."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from daemon.config import Cluster, load_config
from daemon.journal.cluster import ClusterJournal
from daemon.journal.opening import open_counter
from daemon.journal.store import Fingerprint
from daemon.service.metrics import ServiceMetrics
from tests.pg_server import ThrowAwayServer
from tests.service_harness import folder_settings, write_config

FP = Fingerprint(100, 1, "p", "v")


def queue(metrics: ServiceMetrics, state: str) -> float | None:
    return metrics.registry.get_sample_value("hotmatte_queue_files", {"folder": "hot", "state": state})


def test_queue_counts_come_from_the_cluster_database_and_a_server_gone_leaves_them_out(
    tmp_path: Path, own_server: ThrowAwayServer
) -> None:
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            [folder_settings(tmp_path, "hot")],
            cluster={"database": own_server.conninfo, "node": "n1"},
        )
    )
    node = ClusterJournal(Cluster(database=own_server.conninfo, node="n2"), tmp_path / "n2")
    metrics = ServiceMetrics(lambda: open_counter(config))
    try:
        for name in ("a.jpg", "b.jpg"):
            node.offer("hot", name, FP)
        entry = node.claim(["hot"])
        assert entry is not None
        node.mark_done(entry.id, "/review/a.png", confidence=0.2, review=True)
        assert (queue(metrics, "pending"), queue(metrics, "done"), queue(metrics, "review")) == (1, 0, 1)
        assert not (tmp_path / "state").exists()  # no SQLite journal was made for it

        own_server.stop()
        metrics.outcome("hot", "done")
        text = generate_latest(metrics.registry).decode()  # gives up within a second or so, not hangs
        assert "hotmatte_queue_files{" not in text
        assert 'hotmatte_files_processed_total{folder="hot",outcome="done"} 1.0' in text
        assert "hotmatte_queue_files{" not in generate_latest(metrics.registry).decode()  # refused at once

        own_server.start()
        assert queue(metrics, "pending") == 1  # the next scrape connects again
    finally:
        metrics.close()
        node.close()
