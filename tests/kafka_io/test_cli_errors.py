"""Every `olist` option with a wrong value: one stderr line naming it, a non-zero exit, and
no traceback (the real CLI, in a subprocess, on the real stack)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CASES = {
    "schema missing": (["ingest", "--until-caught-up", "--schema", "nope_no_such_schema"], {},
                       "--schema nope_no_such_schema"),
    "schema too long": (["ingest", "--until-caught-up", "--schema", "s" * 64], {}, "'--schema'"),
    "topic missing": (["ingest", "--until-caught-up", "--topic", "nope.no.such.topic",
                       "--schema", "{schema}"], {},
                      "--topic nope.no.such.topic"),
    "topic name illegal": (["ingest", "--until-caught-up", "--topic", "no such"], {}, "'--topic'"),
    "group empty": (["ingest", "--until-caught-up", "--group", ""], {}, "'--group'"),
    "group blank": (["ingest", "--follow", "--group", "  "], {}, "'--group'"),
    "batch size zero": (["ingest", "--until-caught-up", "--batch-size", "0"], {}, "'--batch-size'"),
    "workers zero": (["ingest", "--until-caught-up", "--workers", "0"], {}, "'--workers'"),
    "no mode": (["ingest"], {}, "--until-caught-up or --follow"),
    "kafka unreachable": (["ingest", "--until-caught-up", "--schema", "{schema}"],
                          {"OLIST_KAFKA_BOOTSTRAP": "127.0.0.1:{port}"}, "Kafka at 127.0.0.1:"),
    "replay dir without CSVs": (["replay", "--data-dir", "{empty}"], {}, "--data-dir"),
    "replay dir missing": (["replay", "--data-dir", "/nonexistent/olist"], {}, "'--data-dir'"),
    "reset topic missing": (["offsets", "reset", "--to-log-start", "--topic", "nope.no.such",
                             "--schema", "{schema}"], {},
                            "--topic nope.no.such"),
    "reset without action": (["offsets", "reset"], {}, "--to-log-start"),
    "fetch limit under its floor": (["ingest", "--until-caught-up"],
                                    {"OLIST_KAFKA_FETCH_MAX_BYTES": "65536"},
                                    "OLIST_KAFKA_FETCH_MAX_BYTES: Input should be greater than"),
    "setting not a number": (["ingest", "--until-caught-up", "--schema", "{schema}"],
                             {"OLIST_PG_PORT": "x"},
                             "OLIST_PG_PORT: Input should be a valid integer"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_a_wrong_value_is_one_line_naming_the_option(case, raw_schema, tmp_path):
    args, env, named = CASES[case]
    port = str(_free_port())
    # The test's own schema, never the shared one, wherever the command gets that far.
    args = [a.format(empty=tmp_path, schema=raw_schema) for a in args]
    env = {k: v.format(port=port) for k, v in env.items()}

    result = subprocess.run(
        [os.path.join(REPO_ROOT, ".venv/bin/olist"), *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
        env={**os.environ, "OLIST_KAFKA_RETRY_SECONDS": "2", "OLIST_PG_RETRY_SECONDS": "2", **env},
    )  # fmt: skip

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("olist: error: ") and named in lines[0], lines[0]
