"""`olist bench scale`'s memory figures are the command's own: its peak (VmHWM) and its process
tree's, not the resident set of the big Python process that started it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from olist_dev.bench.rss import measure_command
from olist_dev.bench.scale import timed_child

MB = 1024 * 1024


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def holds(mb: int, seconds: float = 0.6) -> str:
    # bytes * n writes every page (a bytearray of zeros may stay unmapped).
    return f"import time; block = b'x' * ({mb} * {MB}); time.sleep({seconds})"


def test_a_command_that_allocates_200_mb_reports_at_least_that() -> None:
    measured = timed_child(python(holds(220)), dict(os.environ))
    assert measured["peak_rss_mb"] >= 200
    assert measured["tree_rss_mb"] >= 200


def test_a_tiny_command_from_a_big_parent_reports_its_own_size() -> None:
    big = b"x" * (300 * MB)  # this process: what wait4's ru_maxrss counted for the child
    tiny = python("import time; time.sleep(0.3)")
    measured = measure_command(tiny, dict(os.environ))
    assert measured.returncode == 0
    assert measured.peak.largest_mb < 50
    assert measured.peak.tree_mb < 50
    # The old figure, for the record: the child's pre-exec copy of this process.
    proc = subprocess.Popen(tiny)
    _, _, usage = os.wait4(proc.pid, 0)
    assert len(big) and usage.ru_maxrss / 1024 >= 250


def test_workers_are_counted_in_the_tree_and_the_largest_alone() -> None:
    # A parent starting two workers of ~120 MB each, alive at the same time.
    worker = holds(120, seconds=1.0)
    parent = (
        "import subprocess, sys; "
        f"workers = [subprocess.Popen([sys.executable, '-c', {worker!r}]) for _ in range(2)]; "
        "sys.exit(sum(w.wait() for w in workers))"
    )
    measured = measure_command(python(parent), dict(os.environ))
    assert measured.returncode == 0, measured.output
    assert measured.peak.processes == 3
    assert 110 <= measured.peak.largest_mb < 200
    assert measured.peak.tree_mb >= 230


def test_a_failing_command_raises_with_its_output() -> None:
    with pytest.raises(RuntimeError, match=r"(?s)exited 3.*boom"):
        timed_child(python("import sys; print('boom'); sys.exit(3)"), dict(os.environ))
