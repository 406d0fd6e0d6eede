"""The Try and Batch pages, in chromium, against a real `hotmatte run` with its model.

One daemon serves the whole module (a daemon start loads the model: seconds on a busy CPU).
"""

from __future__ import annotations

import io
import struct
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from playwright.sync_api import APIResponse, Page, expect

from daemon.config import parse_config
from tests.console.browser import screenshot
from tests.service_harness import Daemon, folder_settings, write_config

#: Small bounds, so the refusals are cheap to provoke.
UPLOAD_MAX_MB = 1
MAX_MEGAPIXELS = 10


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, jpeg: bytes) -> Iterator[tuple[str, Path, Path]]:
    """(console URL, state dir of the console, hot folder) of a daemon with one hot folder."""
    root = tmp_path_factory.mktemp("tryout")
    (root / "outside.jpg").write_bytes(jpeg)
    # Excluded from processing (the daemon leaves them alone); the Try page may still pick them.
    hot = folder_settings(root, "hot", exclude=["*"])
    config = write_config(
        root / "config.yaml",
        [hot],
        console={"listen": "127.0.0.1:0", "upload_max_mb": UPLOAD_MAX_MB},
        max_megapixels=MAX_MEGAPIXELS,
    )
    (root / "hot" / "photo.jpg").write_bytes(jpeg)
    (root / "hot" / "link.jpg").symlink_to(root / "outside.jpg")
    state = root / "state" / "console"
    for leftover in ("try/0123456789abcdef", "batch/0123456789abcdef/in"):
        (state / leftover).mkdir(parents=True)
        (state / leftover / "000.jpg").write_bytes(jpeg)
    with Daemon(config) as daemon:
        url = str(daemon.wait_for("console", timeout=120)[0]["url"])
        yield url, state, root / "hot"


def post(page: Page, url: str, **kwargs: Any) -> APIResponse:
    """A POST from the page's browser context, carrying its CSRF value the way HTMX does."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    headers = {"X-CSRF-Token": cookies.get("hotmatte_csrf", ""), "HX-Request": "true"}
    return page.request.post(url, headers=headers, **kwargs)


def open_try(page: Page, base: str, jpeg: bytes) -> None:
    page.goto(base + "try")
    page.set_input_files("#try-upload input[type=file]", {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": jpeg})
    page.click("#try-upload button")
    expect(page.locator("#preview-img")).to_be_visible(timeout=120_000)


def set_slider(page: Page, name: str, value: float) -> None:
    page.eval_on_selector(
        f"[name='{name}']",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        value,
    )


def image_bytes(page: Page, src: str) -> bytes:
    return page.request.get(page.url.split("/try")[0] + src).body()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width``×``height`` and whose pixels are a few bytes of nothing."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_leftover_uploads_of_a_previous_run_are_removed_when_the_console_starts(console: tuple[str, Path, Path]) -> None:
    _, state, _ = console
    assert not (state / "try" / "0123456789abcdef").exists()
    assert not (state / "batch" / "0123456789abcdef").exists()


def test_moving_a_slider_on_try_changes_the_preview_and_its_mask(console: tuple[str, Path, Path], page: Page, jpeg: bytes) -> None:
    base, _, _ = console
    open_try(page, base, jpeg)
    before_src = page.get_attribute("#preview-img", "src")
    before_mask = page.get_attribute("#mask-img", "src")
    assert before_src and before_mask
    set_slider(page, "erode", 12)
    page.wait_for_function(f"document.querySelector('#preview-img').getAttribute('src') !== '{before_src}'", timeout=60_000)
    after_src = page.get_attribute("#preview-img", "src")
    after_mask = page.get_attribute("#mask-img", "src")
    assert after_src and after_mask
    assert image_bytes(page, after_src) != image_bytes(page, before_src)
    assert image_bytes(page, after_mask) != image_bytes(page, before_mask)
    page.wait_for_function("document.querySelector('#preview-img').complete")
    screenshot(page, "try")
