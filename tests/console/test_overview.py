"""The Overview page, in Debian's chromium against a real `hotmatte run`."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, expect

from daemon.config import parse_config
from daemon.console import ConsoleContext, ConsoleServer
from daemon.journal.opening import open_reader
from tests.console.browser import screenshot
from tests.service_harness import Daemon, folder_settings, write_config


def test_a_file_dropped_into_a_hot_folder_appears_done_on_the_open_overview_without_a_reload(
    tmp_path: Path, page: Page, jpeg: bytes
) -> None:
    folders = [folder_settings(tmp_path, "hot"), folder_settings(tmp_path, "archive")]
    config = write_config(tmp_path / "config.yaml", folders, console={"listen": "127.0.0.1:0"})
    with Daemon(config) as daemon:
        page.goto(str(daemon.wait_for("console", timeout=120)[0]["url"]))
        done = page.locator('tr[data-folder="hot"] td[data-state="done"]')
        expect(done).to_have_text("0")
        (tmp_path / "hot" / "portrait.jpg").write_bytes(jpeg)
        (tmp_path / "archive" / "product.jpg").write_bytes(jpeg)
        (tmp_path / "archive" / "cut-short.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # a real corrupt file
        daemon.wait_for("done", count=2, timeout=120)
        daemon.wait_for("failed", timeout=120)
        # The page refreshes itself (HTMX polling); nothing here reloads it.
        expect(done).to_have_text("1", timeout=15_000)
        expect(page.locator('tr[data-folder="archive"] td[data-state="done"]')).to_have_text("1")
        expect(page.locator("#device")).to_have_text("cpu")
        expect(page.locator('tr[data-folder="hot"]')).to_contain_text("reachable")
        expect(page.locator("#stages")).to_contain_text("bottleneck", timeout=15_000)
        expect(page.locator("#space")).to_contain_text("GB")
        assert float(page.locator("#rate").inner_text()) > 0
        expect(page.locator("#last-failures")).to_contain_text("archive/cut-short.jpg")
        expect(page.locator('tr[data-folder="archive"] td[data-state="failed"]')).to_have_text("1")
        screenshot(page, "overview")


def test_an_output_root_gone_from_under_the_daemon_shows_unreachable_with_the_reason(
    tmp_path: Path, page: Page
) -> None:
    config = write_config(
        tmp_path / "config.yaml", [folder_settings(tmp_path, "hot")], console={"listen": "127.0.0.1:0"}
    )
    (tmp_path / "hot-out").mkdir()
    with Daemon(config) as daemon:
        page.goto(str(daemon.wait_for("console", timeout=120)[0]["url"]))
        expect(page.locator('tr[data-folder="hot"]')).to_contain_text("reachable")
        shutil.rmtree(tmp_path / "hot-out")  # an unmounted share looks like this
        expect(page.locator('tr[data-folder="hot"]')).to_contain_text("unreachable", timeout=15_000)
        expect(page.locator("#space")).to_contain_text("No such file or directory")


def test_an_unreadable_journal_is_said_on_the_pages_not_a_bare_error(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    journal.write_bytes(b"not a database, whatever its name says" * 100)
    config = parse_config(f"journal: {journal}\nconsole:\n  listen: 127.0.0.1:0\n", tmp_path)
    assert config.console is not None
    server = ConsoleServer(
        config.console, ConsoleContext(lambda: config, lambda: open_reader(config), tmp_path / "console")
    )
    assert server.start()
    try:
        for path in ("/", "/failures"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=30) as reply:
                assert "The journal cannot be read" in reply.read().decode()
    finally:
        server.stop()
