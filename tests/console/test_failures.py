"""The Failures page and `hotmatte retry`, in Debian's chromium against a real `hotmatte run`.

The failure is real and fixable: the result's directory in the output tree is taken by a file
(as a colleague's stray export would), so writing the result fails with "Not a directory"; once
that file is removed, a retry ends done. No file in the hot folder changes, so only a retry can
bring it back (a changed file would be picked up again on its own).
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.conftest import run_hotmatte
from tests.console.browser import screenshot
from tests.service_harness import Daemon, folder_settings, write_config


def test_failed_files_retried_from_the_page_and_the_command_end_done_and_bad_paths_are_refused(
    tmp_path: Path, page: Page, jpeg: bytes
) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        [folder_settings(tmp_path, "hot")],
        console={"listen": "127.0.0.1:0"},
        retry={"max_attempts": 1},
    )
    (tmp_path / "hot" / "shoot").mkdir()
    (tmp_path / "hot-out").mkdir()
    blocker = tmp_path / "hot-out" / "shoot"
    blocker.write_text("a stray file where the shoot's results go")
    with Daemon(config) as daemon:
        base = str(daemon.wait_for("console", timeout=120)[0]["url"])
        for name in ("a.jpg", "b.jpg", "c.jpg"):
            (tmp_path / "hot" / "shoot" / name).write_bytes(jpeg)
        daemon.wait_for("failed", count=3, timeout=120)

        page.goto(base + "failures")
        rows = page.locator("#failure-list tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator('tr[data-path="shoot/a.jpg"]')).to_contain_text("Not a directory")
        screenshot(page, "failures")

        blocker.unlink()  # the operator fixes the cause...
        page.locator('tr[data-path="shoot/a.jpg"] button.retry').click()  # ...and retries one
        expect(page.locator(".notice")).to_contain_text("Back to pending: hot/shoot/a.jpg")
        daemon.wait_for("done", timeout=120, path="shoot/a.jpg")
        assert (tmp_path / "hot-out" / "shoot" / "a.png").is_file()

        # The command shares the page's code path, against the running daemon.
        retried = run_hotmatte("retry", "--config", config, tmp_path / "hot" / "shoot" / "b.jpg")
        assert retried.returncode == 0, retried.stderr
        daemon.wait_for("done", timeout=120, path="shoot/b.jpg")

        page.reload()
        expect(rows).to_have_count(1)
        page.locator("#retry-all").click()
        expect(page.locator(".notice")).to_contain_text("hot/shoot/c.jpg")
        daemon.wait_for("done", timeout=120, path="shoot/c.jpg")
        page.reload()
        expect(page.locator("#failures")).to_contain_text("No failed files")

        # A hand-made request naming a path outside the folder (HTMX's own, with the page's CSRF
        # header) is refused, and the refusal is shown in place.
        page.evaluate(
            "htmx.ajax('POST', '/failures/retry', {target: '#failures', swap: 'outerHTML',"
            " values: {folder: 'hot', path: '../../etc/passwd'}})"
        )
        expect(page.locator(".error")).to_contain_text("Refused:")
        page.goto(base)
        expect(page.locator('tr[data-folder="hot"] td[data-state="done"]')).to_have_text("3")
        expect(page.locator('tr[data-folder="hot"] td[data-state="failed"]')).to_have_text("0")
