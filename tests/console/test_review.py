"""The Files and Review pages, in a real browser, against a real daemon and its model."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page

from daemon.journal.store import Journal
from tests.console.browser import screenshot
from tests.service_harness import Daemon, folder_settings, write_config


def _images_loaded(page: Page, selector: str) -> int:
    """How many ``selector`` images the browser actually decoded."""
    return int(
        page.eval_on_selector_all(selector, "els => els.filter(e => e.complete && e.naturalWidth > 0).length")
    )


def test_review_approve_and_reject_move_results_and_files_shows_thumbnails(
    tmp_path: Path, page: Page, jpeg: bytes
) -> None:
    hot = folder_settings(tmp_path, "hot", review_below=1.0)  # every result goes to review
    config = write_config(tmp_path / "config.yaml", [hot], console={"listen": "127.0.0.1:0"})
    out, review_dir, errors = (tmp_path / n for n in ("hot-out", "hot-out-review", "hot-out-errors"))
    with Daemon(config) as daemon:
        base = str(daemon.wait_for("console", timeout=120)[0]["url"])
        (tmp_path / "hot" / "keep.jpg").write_bytes(jpeg)
        (tmp_path / "hot" / "bad.jpg").write_bytes(jpeg)
        daemon.wait_for("done", count=2, timeout=180)
        assert {p.stem for p in review_dir.glob("*.png")} == {"keep", "bad"}

        page.goto(base + "review")
        assert page.locator(".review-item").count() == 2
        page.wait_for_function("[...document.images].every(i => i.complete)")
        assert _images_loaded(page, ".review-item img") == 8  # before + after on three backgrounds
        page.fill("#review-colour", "#ff0000")
        screenshot(page, "review")

        page.locator(".review-item[data-path='keep.jpg'] button.approve").click()
        assert "approved" in page.locator("#message").inner_text()
        [approved] = [p for p in out.rglob("keep.*") if p.is_file()]
        assert approved.stat().st_size > 0 and not any(review_dir.glob("keep.*"))

        page.locator(".review-item[data-path='bad.jpg'] button.reject").click()
        assert "rejected" in page.locator("#message").inner_text()
        record = json.loads((errors / "bad.jpg.error.json").read_text())
        assert record["reason"].startswith("rejected by the operator")
        assert record["error_class"] == "RejectedByOperator"
        assert (errors / "bad.jpg").read_bytes() == jpeg  # the original, copied
        assert any(errors.glob("bad.rejected.*")) and not any(review_dir.glob("bad.*"))
        assert page.locator(".review-item").count() == 0

        page.goto(base + "files")
        assert page.locator("tr.file-row").count() == 2
        page.wait_for_function("[...document.images].every(i => i.complete)")
        assert _images_loaded(page, "img.thumb") == 4
        assert "rejected by the operator" in page.locator("tr[data-state='failed']").inner_text()
        screenshot(page, "files")

    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        assert sorted((d.path, d.decision) for d in journal.decisions()) == [
            ("bad.jpg", "reject"),
            ("keep.jpg", "approve"),
        ]
    finally:
        journal.close()


def test_rerun_with_another_profile_runs_the_file_again_with_it_and_stale_decisions_are_refused(
    tmp_path: Path, page: Page, jpeg: bytes
) -> None:
    hot = folder_settings(tmp_path, "hot", review_below=1.0)
    config = write_config(tmp_path / "config.yaml", [hot], console={"listen": "127.0.0.1:0"})
    with Daemon(config) as daemon:
        base = str(daemon.wait_for("console", timeout=120)[0]["url"])
        (tmp_path / "hot" / "again.jpg").write_bytes(jpeg)
        daemon.wait_for("done", timeout=180)
        page.goto(base + "review")
        entry_id = page.locator(".review-item").get_attribute("data-id")
        item = page.locator(".review-item[data-path='again.jpg']")
        item.locator("select[name=profile]").select_option("product")
        item.locator("button.rerun").click()
        assert "runs again with profile product" in page.locator("#message").inner_text()
        daemon.wait_for("done", count=2, timeout=180)
        assert [e["profile"] for e in daemon.named("started")] == ["raw", "product"]

        # The page still offering the old decision (another tab): refused, said readably.
        page.evaluate(
            """url => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
            const i = document.createElement('input'); i.name = 'action'; i.value = 'approve';
            const t = document.createElement('input'); t.name = 'csrf_token';
            t.value = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            f.append(i, t); document.body.appendChild(f); f.submit(); }""",
            f"{base}review/{int(entry_id or 0) + 1000}",
        )
        page.wait_for_selector("#error")
        assert "no longer waiting for review" in page.locator("#error").inner_text()

    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        entry = journal.get("hot", "again.jpg")
        assert entry is not None and entry.profile == "product" and entry.review
        assert [(d.decision, d.profile) for d in journal.decisions()] == [("rerun", "product")]
    finally:
        journal.close()
