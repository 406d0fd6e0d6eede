"""The console is served by `hotmatte run` itself, and never stands in the way of processing."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from playwright.sync_api import Page

from tests.console.browser import screenshot
from tests.service_harness import Daemon, folder_settings, write_config


def _url(daemon: Daemon) -> str:
    return str(daemon.wait_for("console", timeout=120)[0]["url"])


def test_the_daemon_serves_the_console_and_metrics_on_the_configured_address(
    tmp_path: Path, page: Page
) -> None:
    config = write_config(
        tmp_path / "config.yaml", [folder_settings(tmp_path, "hot")], console={"listen": "127.0.0.1:0"}
    )
    with Daemon(config) as daemon:
        base = _url(daemon)
        page.goto(base)
        assert page.title().startswith("Overview")
        screenshot(page, "smoke-overview")
        metrics = urllib.request.urlopen(base + "metrics", timeout=10).read().decode()
        assert "# HELP" in metrics or metrics == ""


def test_a_taken_console_port_is_logged_and_files_are_still_processed(tmp_path: Path, jpeg: bytes) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    config = write_config(
        tmp_path / "config.yaml", [folder_settings(tmp_path, "hot")], console={"listen": f"127.0.0.1:{port}"}
    )
    try:
        with Daemon(config) as daemon:
            daemon.wait_for("console_unavailable", timeout=120)
            (tmp_path / "hot" / "a.jpg").write_bytes(jpeg)
            daemon.wait_for("done", timeout=180)
    finally:
        blocker.close()
