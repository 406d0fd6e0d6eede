"""A real browser for the console tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here (no network but PyPI, Debian and npm), so
it launches the system chromium through ``executable_path``. ``make test`` installs chromium
when it is missing; without it these tests fail, they do not skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page

#: Screenshots of every page land here (a test artefact; the README's pictures are copied from it).
ARTIFACTS = Path(os.environ.get("HOTMATTE_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError("no chromium: make test installs Debian's (apt-get install chromium)")
    return found


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as ``artifacts/console/<name>.png``."""
    path = ARTIFACTS / "console" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
