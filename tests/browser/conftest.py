"""What every browser test shares: Debian's chromium driven by Playwright (`make test` installs
it: `olist setup browser`), and screenshots written to the git-ignored bench/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

from olist_dev.browser import CHROMIUM, CHROMIUM_ARGS
from olist_dev.settings import REPO_ROOT

playwright = pytest.importorskip("playwright.sync_api")

SCREENSHOTS = REPO_ROOT / "bench" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `olist setup browser` (make test does)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        yield b
        b.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
