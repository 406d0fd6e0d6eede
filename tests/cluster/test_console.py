"""The console and ``hotmatte retry`` against real cluster nodes (``hotmatte run`` on PostgreSQL).

Two nodes share one hot folder. Two files fail for a real, fixable reason (the results'
directory in the output tree is taken by a stray file, so writing fails with "Not a
directory"); once it is removed, one file is retried through node 1's console (the Failures
page's POST) and the other with ``hotmatte retry`` given node 2's config. Each must be done
exactly once in the cluster, by whichever node took its new job. The Overview meanwhile shows
both nodes as ``hotmatte status`` does.
"""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.cluster.nodes import QUICK, events, states
from tests.conftest import run_hotmatte
from tests.service_harness import Daemon, folder_settings, write_config


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read().decode(), reply.headers.get_all("set-cookie") or []
    finally:
        connection.close()


def post_form(port: int, path: str, fields: dict[str, str], cookie: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
        connection.request("POST", path, body=urlencode(fields), headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def node_row(html: str, node: str) -> str:
    found = re.search(rf'<tr data-node="{node}">(.*?)</tr>', html, re.S)
    assert found, f"no row for node {node} in:\n{html}"
    return found.group(1)


def field(row: str, name: str) -> str:
    found = re.search(rf'data-field="{name}">(.*?)</td>', row, re.S)
    assert found, row
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def wait_states(database: str, wanted: dict[str, int], nodes: list[Daemon], timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while {k: states(database).get(k, 0) for k in wanted} != wanted:
        if time.monotonic() > deadline:
            tails = "\n".join(d.tail(15) for d in nodes)
            raise AssertionError(f"{states(database)}, wanted {wanted}, after {timeout}s\n{tails}")
        time.sleep(0.3)


def test_failed_files_retried_through_a_nodes_console_and_the_command_are_done_once_in_the_cluster(
    tmp_path: Path, database: str, jpeg: bytes
) -> None:
    folder = folder_settings(tmp_path, "hot")
    configs = []
    for node in ("n1", "n2"):
        (tmp_path / node).mkdir()
        configs.append(
            write_config(
                tmp_path / node / "c.yaml",
                [folder],
                cluster={"database": database, "node": node, **QUICK},
                console={"listen": "127.0.0.1:0"} if node == "n1" else None,
                retry={"max_attempts": 1},
            )
        )
    (tmp_path / "hot" / "shoot").mkdir()
    (tmp_path / "hot-out").mkdir()
    blocker = tmp_path / "hot-out" / "shoot"
    blocker.write_text("a stray file where the shoot's results go")
    nodes = [Daemon(config) for config in configs]
    try:
        port = int(str(nodes[0].wait_for("console", timeout=120)[0]["url"]).rsplit(":", 1)[1].strip("/"))
        for daemon in nodes:
            daemon.wait_for("start", timeout=120)
        for name in ("a.jpg", "b.jpg"):
            (tmp_path / "hot" / "shoot" / name).write_bytes(jpeg)
        wait_states(database, {"failed": 2}, nodes)

        # Node 1's Overview shows the whole cluster: its folder counts, and both nodes alive.
        status, html, _ = get(port, "/overview/live")
        assert status == 200
        assert re.search(r'data-state="failed">\s*<a[^>]*>2</a>', html), html
        for node in ("n1", "n2"):
            row = node_row(html, node)
            assert field(row, "state") == "alive"
            assert field(row, "heartbeat").endswith("s ago")
            assert field(row, "running") == "0"
        assert "(this console)" in node_row(html, "n1")

        blocker.unlink()  # the operator fixes the cause, then retries one file on the console...
        _, failures, cookies = get(port, "/failures")
        assert "shoot/a.jpg" in failures and "shoot/b.jpg" in failures
        csrf = next(c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("hotmatte_csrf="))
        fields = {"csrf_token": csrf, "folder": "hot", "path": "shoot/a.jpg"}
        assert post_form(port, "/failures/retry", fields, f"hotmatte_csrf={csrf}") == 303
        wait_states(database, {"done": 1, "failed": 1}, nodes)
        # ...and the other with the command, given the other node's config: same database.
        retried = run_hotmatte("retry", "--config", configs[1], tmp_path / "hot" / "shoot" / "b.jpg")
        assert retried.returncode == 0, retried.stderr
        assert "shoot/b.jpg: back to pending" in retried.stdout
        wait_states(database, {"done": 2, "failed": 0}, nodes)
        time.sleep(1.0)  # nothing more may happen

        names = ["shoot/a.jpg", "shoot/b.jpg"]
        assert events(database, "requeued") == dict.fromkeys(names, 1)
        assert events(database, "done") == dict.fromkeys(names, 1)
        assert events(database, "failed") == dict.fromkeys(names, 1)
        # Each file was processed twice in all (the failed run and the retried one), by one node each time.
        assert events(database, "claimed") - events(database, "unclaimed") == dict.fromkeys(names, 2)
        assert sorted(p for d in nodes for p in d.paths("done")) == names
        assert sorted(p.name for p in (tmp_path / "hot-out" / "shoot").iterdir()) == ["a.png", "b.png"]
        assert run_hotmatte("retry", "--config", configs[0], "--all").returncode == 1  # nothing left

        # The node table's "done" column sums to the files done, as in `hotmatte status`.
        _, html, _ = get(port, "/overview/live")
        assert sum(int(field(node_row(html, n), "done")) for n in ("n1", "n2")) == 2
    finally:
        for daemon in nodes:
            daemon.terminate()
