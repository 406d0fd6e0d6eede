"""The Review and Files pages and ``/metrics`` of a real cluster node (``hotmatte run`` on PostgreSQL).

One node, every result below ``review_below: 1.0`` so it waits for review. Through the Review
page's POST (with its CSRF token, as a browser sends it) the operator approves one file, whose
result must then be in the output tree, and re-runs the other with another profile, which the
cluster must run again with that profile. ``/metrics`` counts the cluster's queue.
"""

from __future__ import annotations

import http.client
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlencode

import psycopg
import pytest

from tests.cluster.nodes import QUICK, events
from tests.cluster.test_console import get
from tests.service_harness import Daemon, folder_settings, write_config


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def post_form(port: int, path: str, fields: dict[str, str], cookie: str) -> tuple[int, str]:
    """POST a form; the status and where it redirects to."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
        connection.request("POST", path, body=urlencode(fields), headers=headers)
        reply = connection.getresponse()
        return reply.status, unquote(reply.headers.get("location", ""))
    finally:
        connection.close()


def in_review(database: str) -> dict[str, int]:
    """Relative path → row id of the done files waiting for review."""
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT path, id FROM hotmatte_files WHERE state = 'done' AND review = 1")
        return {bytes(r[0]).decode(): int(r[1]) for r in rows}


def wait_until(check: object, what: str, daemon: Daemon, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s\n{daemon.tail(20)}")
        time.sleep(0.3)


def queue_sample(text: str, state: str) -> float | None:
    found = re.search(rf'^hotmatte_queue_files\{{folder="hot",state="{state}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_a_cluster_nodes_review_page_approves_and_reruns_and_metrics_count_the_cluster_queue(
    tmp_path: Path, database: str, jpeg: bytes
) -> None:
    (tmp_path / "n1").mkdir()
    config = write_config(
        tmp_path / "n1" / "c.yaml",
        [folder_settings(tmp_path, "hot", review_below=1.0)],  # every result goes to review
        cluster={"database": database, "node": "n1", **QUICK},
        console={"listen": "127.0.0.1:0"},
    )
    out, review_dir = tmp_path / "hot-out", tmp_path / "hot-out-review"
    with Daemon(config) as daemon:
        port = int(str(daemon.wait_for("console", timeout=120)[0]["url"]).rsplit(":", 1)[1].strip("/"))
        daemon.wait_for("start", timeout=120)
        for name in ("keep.jpg", "again.jpg"):
            (tmp_path / "hot" / name).write_bytes(jpeg)
        wait_until(lambda: len(in_review(database)) == 2, "both files in review", daemon)
        assert {p.stem for p in review_dir.glob("*.png")} == {"keep", "again"}
        ids = in_review(database)

        # The Files page lists the cluster's rows; /metrics counts them, review apart from done.
        status, files, _ = get(port, "/files?state=review")
        assert status == 200 and "keep.jpg" in files and "again.jpg" in files
        _, metrics, _ = get(port, "/metrics/")  # the mounted app answers under the slash
        assert queue_sample(metrics, "review") == 2 and queue_sample(metrics, "done") == 0

        status, page, cookies = get(port, "/review")
        assert status == 200
        assert f'data-id="{ids["keep.jpg"]}"' in page and f'data-id="{ids["again.jpg"]}"' in page
        csrf = next(c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("hotmatte_csrf="))
        cookie = f"hotmatte_csrf={csrf}"

        status, location = post_form(
            port, f"/review/{ids['keep.jpg']}", {"csrf_token": csrf, "action": "approve"}, cookie
        )
        assert status == 303 and "approved" in location, location
        [approved] = [p for p in out.rglob("keep.*") if p.is_file()]
        assert approved.stat().st_size > 0 and not any(review_dir.glob("keep.*"))
        # Decided once: the same POST again is refused, readably.
        status, location = post_form(
            port, f"/review/{ids['keep.jpg']}", {"csrf_token": csrf, "action": "approve"}, cookie
        )
        assert status == 303 and "no longer waiting for review" in location, location

        fields = {"csrf_token": csrf, "action": "rerun", "profile": "product"}
        status, location = post_form(port, f"/review/{ids['again.jpg']}", fields, cookie)
        assert status == 303 and "runs again with profile product" in location, location
        wait_until(lambda: in_review(database) == {"again.jpg": ids["again.jpg"]}, "again.jpg re-run", daemon)
        assert sorted((e["path"], e["profile"]) for e in daemon.named("started")) == [
            ("again.jpg", "product"),
            ("again.jpg", "raw"),
            ("keep.jpg", "raw"),
        ]
        assert events(database, "decided") == {"keep.jpg": 1, "again.jpg": 1}
        assert events(database, "claimed")["again.jpg"] == 2

        _, metrics, _ = get(port, "/metrics/")  # the mounted app answers under the slash
        assert queue_sample(metrics, "done") == 1 and queue_sample(metrics, "review") == 1
        _, page, _ = get(port, "/review")
        for path, decision in (("keep.jpg", "approve"), ("again.jpg", "rerun")):  # the latest decisions
            assert f"<td>hot/{path}</td><td>{decision}</td>" in page
