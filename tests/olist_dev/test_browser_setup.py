"""Set-up of the browser tests' chromium: found where Debian puts it, and the one-line refusal
to install it without root (the install itself is apt-get's, run by `make test` as root)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from olist_dev import browser
from olist_dev.cli import cli
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


def test_olist_setup_browser_prints_the_browser_or_one_line_and_exit_1(tmp_path, monkeypatch):
    chromium = tmp_path / "chromium"
    monkeypatch.setattr(browser, "CHROMIUM", chromium)
    monkeypatch.setattr(common, "is_root", lambda: False)
    missing = CliRunner().invoke(cli, ["setup", "browser"])
    assert missing.exit_code == 1
    assert missing.output == (
        f"olist: error: chromium not installed (no {chromium}; the browser tests drive it): "
        "run `sudo apt-get install chromium`\n"
    )
    chromium.touch()
    present = CliRunner().invoke(cli, ["setup", "browser"])
    assert (present.exit_code, present.output) == (0, f"chromium: {chromium}\n")
