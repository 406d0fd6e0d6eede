"""Helpers of the cluster tests: node configs sharing one folder, and what the database says."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from tests.service_harness import Daemon, folder_settings, write_config

#: Short heartbeats so a killed node's file comes back in seconds, not the default half minute.
QUICK = {"heartbeat_seconds": 0.5, "stalled_after_seconds": 3.0}


def node_config(tmp_path: Path, node: str, database: str, **cluster: Any) -> Path:
    """``hotmatte run`` config of ``node``: the shared folder ``tmp_path/hot``, its own local state."""
    home = tmp_path / node
    home.mkdir(exist_ok=True)
    return write_config(
        home / "c.yaml",
        [folder_settings(tmp_path, "hot")],
        cluster={"database": database, "node": node, **QUICK, **cluster},
    )


def start_nodes(tmp_path: Path, database: str, names: list[str], **cluster: Any) -> list[Daemon]:
    daemons = [Daemon(node_config(tmp_path, name, database, **cluster)) for name in names]
    for daemon in daemons:
        daemon.wait_for("start", timeout=120)
    return daemons


def drop(folder: Path, jpeg: bytes, count: int, prefix: str = "f") -> list[str]:
    names = [f"{prefix}{i:03d}.jpg" for i in range(count)]
    for name in names:
        (folder / name).write_bytes(jpeg)
    return names


def states(database: str) -> Counter[str]:
    with psycopg.connect(database) as conn:
        return Counter(r[0] for r in conn.execute("SELECT state FROM hotmatte_files"))


def events(database: str, kind: str) -> Counter[str]:
    """Per relative path, how many events of ``kind``."""
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT path FROM hotmatte_events WHERE kind = %s", (kind,))
        return Counter(bytes(r[0]).decode() for r in rows)


def wait_all_done(database: str, count: int, daemons: list[Daemon], timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while states(database).get("done", 0) < count:
        if time.monotonic() > deadline:
            tails = "\n".join(d.tail(15) for d in daemons)
            raise AssertionError(f"only {states(database)} after {timeout}s\n{tails}")
        time.sleep(0.3)
