"""The developer CLI: one tree with the runtime commands, and the UI's bind-address warning."""

from __future__ import annotations

import subprocess
import sys

import pytest

from olist_dev.cli import bind_warning, cli, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("10.1.2.3", False), ("example.com", False), ("::", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_olist_is_one_tree_of_runtime_and_dev_commands():
    assert {"replay", "ingest", "offsets", "stack", "demo", "ui", "docs", "dg", "bench"} <= set(
        cli.commands
    )
    assert {"ingest", "dbt", "e2e"} <= set(cli.commands["bench"].commands)


def test_a_public_bind_address_gets_a_warning_and_loopback_none():
    warning = bind_warning("0.0.0.0", "the Dagster UI")
    assert warning == (
        "olist: warning: the Dagster UI has no authentication; --host 0.0.0.0 lets anyone who "
        "can reach this address use it"
    )
    assert bind_warning("127.0.0.1", "the Dagster UI") is None


def test_olist_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "olist_dev.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "stack" in result.stdout and "ingest" in result.stdout


def test_runtime_cli_alone_has_no_dev_commands():
    from kafka_io.cli import cli as runtime

    assert set(runtime.commands) == {"replay", "ingest", "offsets"}
