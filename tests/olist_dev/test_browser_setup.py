"""Set-up of the browser tests' chromium: found where Debian puts it, and the one-line refusal
to install it without root (the install itself is apt-get's, run by `make test` as root)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from olist_dev import browser
from olist_dev.stack import common
from olist_dev.stack.common import StackError


def test_present_chromium_is_reported_and_nothing_installed(tmp_path):
    chromium = tmp_path / "chromium"
    chromium.touch()
    assert browser.ensure_chromium(chromium) == f"chromium: {chromium}"


def test_missing_chromium_without_root_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "is_root", lambda: False)
    missing = tmp_path / "chromium"
    with pytest.raises(StackError) as error:
        browser.ensure_chromium(missing)
    assert str(error.value) == (
        f"chromium not installed (no {missing}; the browser tests drive it): "
        "run `sudo apt-get install chromium`"
    )


def test_olist_setup_browser_prints_the_browser():
    result = subprocess.run(
        [sys.executable, "-m", "olist_dev.cli", "setup", "browser"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"chromium: {browser.CHROMIUM}\n"
