"""The Try and Batch pages, in chromium, against a real `hotmatte run` with its model.

One daemon serves the whole module (a daemon start loads the model: seconds on a busy CPU).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from playwright.sync_api import APIResponse, FilePayload, Page, expect

from daemon.config import parse_config
from tests.conftest import photo
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
        profiles={"studio": {"extends": "product", "margin": 9, "background": "#102030"}},
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
    """A POST from the page's browser context with its CSRF value (not as HTMX: real status codes)."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    headers = {"X-CSRF-Token": cookies.get("hotmatte_csrf", "")}
    return page.request.post(url, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def portrait() -> bytes:
    """``astronaut`` at its own 512×512: big enough to see the knobs act on the screenshot."""
    buffer = io.BytesIO()
    Image.fromarray(photo("astronaut")).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def open_try(page: Page, base: str, jpeg: bytes) -> None:
    page.goto(base + "try")
    page.set_input_files(
        "#try-upload input[type=file]", {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": jpeg}
    )
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

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_leftover_uploads_of_a_previous_run_are_removed_when_the_console_starts(
    console: tuple[str, Path, Path],
) -> None:
    _, state, _ = console
    assert not (state / "try" / "0123456789abcdef").exists()
    assert not (state / "batch" / "0123456789abcdef").exists()


def test_moving_a_slider_on_try_changes_the_preview_and_its_mask(
    console: tuple[str, Path, Path], page: Page, portrait: bytes
) -> None:
    base, _, _ = console
    open_try(page, base, portrait)
    before_src = page.get_attribute("#preview-img", "src")
    before_mask = page.get_attribute("#mask-img", "src")
    assert before_src and before_mask
    set_slider(page, "erode", 12)
    page.wait_for_function(
        f"document.querySelector('#preview-img').getAttribute('src') !== '{before_src}'", timeout=60_000
    )
    after_src = page.get_attribute("#preview-img", "src")
    after_mask = page.get_attribute("#mask-img", "src")
    assert after_src and after_mask
    assert image_bytes(page, after_src) != image_bytes(page, before_src)
    assert image_bytes(page, after_mask) != image_bytes(page, before_mask)
    # The screenshot with a profile that cleans the small test model's α up.
    page.select_option("#try-profile", "complex_background")
    page.wait_for_function(
        f"document.querySelector('#preview-img').getAttribute('src') !== '{after_src}'", timeout=60_000
    )
    page.wait_for_function("document.querySelector('#preview-img').complete")
    screenshot(page, "try")


def test_try_settings_copy_as_a_yaml_snippet_that_check_config_accepts(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes
) -> None:
    base, _, _ = console
    open_try(page, base, jpeg)
    page.select_option("#try-profile", "portrait")
    expect(page.locator("#knob-decontaminate")).to_be_checked()
    set_slider(page, "feather", 3.5)
    page.check("#knob-fill_holes")
    page.fill("#snippet-name", "studio_soft")
    page.click("#try-snippet")
    expect(page.locator("#snippet-ok")).to_be_visible(timeout=30_000)
    text = page.input_value("#snippet-text")
    assert yaml.safe_load(text)["profiles"]["studio_soft"]["extends"] == "portrait"
    profile = parse_config(text, Path.cwd()).profiles["studio_soft"]  # what check-config runs
    assert (profile.feather, profile.fill_holes, profile.decontaminate) == (3.5, True, True)


def test_try_shows_why_settings_would_not_pass_check_config(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes
) -> None:
    base, _, _ = console
    open_try(page, base, jpeg)
    page.select_option("#knob-output_format", "jpeg")  # jpeg has no alpha: needs an opaque background
    page.fill("#snippet-name", "portrait")  # a built-in's name
    page.click("#try-snippet")
    problems = page.locator("#snippet-problems")
    expect(problems).to_contain_text("jpeg has no alpha", timeout=30_000)
    page.fill("#snippet-name", "mine")
    page.fill("#knob-background", "white")
    page.click("#try-snippet")
    expect(page.locator("#snippet-ok")).to_be_visible(timeout=30_000)
    page.fill("#snippet-name", "portrait")
    page.click("#try-snippet")
    expect(page.locator("#snippet-problems")).to_contain_text("cannot reuse a built-in name", timeout=30_000)


def test_try_downloads_the_full_resolution_result(
    console: tuple[str, Path, Path], page: Page, portrait: bytes, tmp_path: Path
) -> None:
    base, _, _ = console
    open_try(page, base, portrait)
    page.click("#try-full")
    link = page.locator("#result-ready a.download").first
    expect(link).to_be_visible(timeout=120_000)
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with Image.open(saved) as result:
        assert result.size == (512, 512) and result.mode == "RGBA"


def test_try_opens_a_file_picked_from_a_hot_folder(console: tuple[str, Path, Path], page: Page) -> None:
    base, _, _ = console
    page.goto(base + "try")
    page.fill("#try-pick input[name=path]", "photo.jpg")
    page.click("#try-pick button")
    expect(page.locator("#preview-img")).to_be_visible(timeout=120_000)


@pytest.mark.parametrize(
    "path",
    [
        "../outside.jpg",
        "%2e%2e/outside.jpg",
        "%252e%252e%252foutside.jpg",
        "sub/../../outside.jpg",
        "..\\outside.jpg",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "link.jpg",  # a symlink inside the hot folder, to a file outside it
    ],
)
def test_a_hot_folder_pick_outside_the_folder_or_through_a_link_is_refused(
    console: tuple[str, Path, Path], page: Page, path: str
) -> None:
    base, _, _ = console
    page.goto(base + "try")
    response = post(page, base + "try/pick", form={"folder": "hot", "path": path})
    assert response.status == 403, response.text()
    assert "did not work" in response.text()


def test_a_pick_from_a_folder_that_is_not_configured_is_refused(
    console: tuple[str, Path, Path], page: Page
) -> None:
    base, _, _ = console
    page.goto(base + "try")
    response = post(page, base + "try/pick", form={"folder": "..", "path": "hot/photo.jpg"})
    assert response.status == 403


def test_an_upload_over_upload_max_mb_is_refused_before_it_is_stored(
    console: tuple[str, Path, Path], page: Page
) -> None:
    base, state, _ = console
    page.goto(base + "try")
    before = set((state / "try").iterdir()) if (state / "try").exists() else set()
    big = b"\xff\xd8\xff" + b"\0" * (UPLOAD_MAX_MB * 1_000_000 + 10)
    response = post(
        page,
        base + "try/upload",
        multipart={"image": {"name": "big.jpg", "mimeType": "image/jpeg", "buffer": big}},
    )
    assert response.status == 413
    assert "upload_max_mb" in response.text()
    assert set((state / "try").iterdir()) == before  # nothing of it kept


def test_an_image_over_max_megapixels_is_refused_from_its_header_before_decoding(
    console: tuple[str, Path, Path], page: Page
) -> None:
    base, _, _ = console
    page.goto(base + "try")
    # 4000×4000 = 16 MP declared, but only a few bytes of pixels: a decode would fail as damaged.
    page.set_input_files(
        "#try-upload input[type=file]",
        {"name": "huge.png", "mimeType": "image/png", "buffer": png_header_only(4000, 4000)},
    )
    page.click("#try-upload button")
    error = page.locator(".try-error")
    expect(error).to_contain_text("over max_megapixels", timeout=60_000)
    expect(error).to_contain_text("before decoding")


def test_a_batch_is_uploaded_processed_and_unzipped_with_a_readable_record_per_failed_file(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes, portrait: bytes, tmp_path: Path
) -> None:
    base, state, _ = console
    page.goto(base + "batch")
    files: list[FilePayload] = [
        {"name": "one.jpg", "mimeType": "image/jpeg", "buffer": jpeg},
        {"name": "two.jpg", "mimeType": "image/jpeg", "buffer": portrait},
        {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": jpeg[: len(jpeg) // 3]},
        {"name": "huge.png", "mimeType": "image/png", "buffer": png_header_only(4000, 4000)},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
    ]
    page.set_input_files("#batch-form input[type=file]", files)
    page.select_option("#batch-form select[name=profile]", "product")
    page.click("#batch-form button")
    expect(page.locator("#batch-count")).to_contain_text("5 / 5", timeout=180_000)
    screenshot(page, "batch")
    with page.expect_download() as download:
        page.click("#batch-zip")
    saved = tmp_path / "results.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = sorted(archive.namelist())
        assert names == ["broken.error.txt", "huge.error.txt", "notes.error.txt", "one.png", "two.png"]
        huge = archive.read("huge.error.txt").decode()
        assert "file: huge.png" in huge and "max_megapixels" in huge
        assert "unsupported" in archive.read("notes.error.txt").decode()
        with Image.open(io.BytesIO(archive.read("two.png"))) as two:
            assert two.mode == "RGB" and two.size[0] == two.size[1]  # product: white, square canvas
    page.wait_for_timeout(500)  # the removal runs after the response
    assert not any((state / "batch").iterdir())  # uploads and results gone once downloaded


def test_a_batch_of_more_than_fifty_files_is_refused(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes
) -> None:
    base, _, _ = console
    page.goto(base + "batch")
    files = {"profile": "raw"}
    response = post(
        page,
        base + "batch",
        multipart={
            **files,
            **{
                f"files{i}": {"name": f"{i}.jpg", "mimeType": "image/jpeg", "buffer": b"x"} for i in range(51)
            },
        },
    )
    assert response.status == 400
    assert "at most 50 files" in response.text()


@pytest.mark.parametrize(
    "tail",
    [
        "download/..%2Forigin.json",
        "download/%2e%2e%2f%2e%2e%2fconfig.yaml",
        "download/..",
        "file/..%2Falpha.npy",
        "file/preview.npy",
        "download/%2Fetc%2Fpasswd",
    ],
)
def test_try_file_routes_serve_nothing_but_previews_and_results(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes, tail: str
) -> None:
    base, _, _ = console
    open_try(page, base, jpeg)
    image = page.get_attribute(".try-workspace", "data-image")
    assert page.request.get(f"{base}try/{image}/{tail}").status == 404
    assert page.request.get(f"{base}try/..%2F..%2F{image}/{tail}").status == 404


def test_try_offers_the_configs_custom_profiles_with_their_knobs(
    console: tuple[str, Path, Path], page: Page, jpeg: bytes
) -> None:
    base, _, _ = console
    open_try(page, base, jpeg)
    before = page.get_attribute("#preview-img", "src")
    page.select_option("#try-profile", "studio")
    expect(page.locator("#knob-margin")).to_have_value("9")
    expect(page.locator("#knob-background")).to_have_value("#102030")
    page.wait_for_function(
        f"document.querySelector('#preview-img').getAttribute('src') !== '{before}'", timeout=60_000
    )
