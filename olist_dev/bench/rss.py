"""Peak resident memory of a command and of the processes it starts, read from /proc.

`wait4`'s ru_maxrss is no measure of a command run from Python: it keeps the largest resident
set the child had before exec as well, i.e. the pages of the (large) process that forked it.
/proc/<pid>/status VmHWM is the peak of the process's own memory since its exec, tracked by the
kernel, so sampling it (every `interval` seconds) misses nothing but growth in a process's
last interval. The tree's sum of VmRSS (the command and its workers at the same moment) is
only as good as the sampling: a spike shorter than `interval` can be missed.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
SAMPLE_SECONDS = 0.1


@dataclass
class PeakRss:
    """What the samples saw, in kB: each process's VmHWM and the largest VmRSS sum."""

    hwm_kb: dict[int, int] = field(default_factory=dict)
    tree_kb: int = 0

    @property
    def largest_mb(self) -> float:
        """The peak of the largest single process (the command or one of its workers)."""
        return round(max(self.hwm_kb.values(), default=0) / 1024, 1)

    @property
    def tree_mb(self) -> float:
        """The largest resident total of the whole tree at one moment."""
        return round(self.tree_kb / 1024, 1)

    @property
    def processes(self) -> int:
        return len(self.hwm_kb)


def _children(pid: int) -> list[int]:
    # Every thread's list: a child belongs to the thread that forked it.
    children: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            children.extend(map(int, (task / "children").read_text().split()))
    except OSError:  # gone meanwhile
        pass
    return children


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants now (parents before children)."""
    tree, index = [root], 0
    while index < len(tree):
        tree.extend(_children(tree[index]))
        index += 1
    return tree


def _memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in kB; None once it exited (a zombie has no memory)."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, kb, _ = line.split()
            values[name] = int(kb)
    if len(values) < 2:
        return None
    return values["VmRSS:"], values["VmHWM:"]


def sample_once(root: int, peak: PeakRss) -> bool:
    """Add one sample of ``root``'s tree to ``peak``; False once the root is gone."""
    total, seen_root = 0, False
    for pid in process_tree(root):
        memory = _memory_kb(pid)
        if memory is None:
            continue
        seen_root = seen_root or pid == root
        rss, hwm = memory
        total += rss
        peak.hwm_kb[pid] = max(peak.hwm_kb.get(pid, 0), hwm)
    peak.tree_kb = max(peak.tree_kb, total)
    return seen_root


@contextmanager
def sampling(root: int, interval: float = SAMPLE_SECONDS) -> Iterator[PeakRss]:
    """Sample ``root``'s tree in a thread until the block ends (or the root exits)."""
    peak, done = PeakRss(), threading.Event()

    def run() -> None:
        while sample_once(root, peak) and not done.wait(interval):
            pass

    thread = threading.Thread(target=run, name=f"rss-{root}", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


@dataclass(frozen=True)
class Measured:
    returncode: int
    output: str
    seconds: float
    peak: PeakRss


def measure_command(
    args: list[str], env: dict[str, str] | None = None, interval: float = SAMPLE_SECONDS
) -> Measured:
    """Run ``args`` (stdout and stderr captured together): wall seconds and the memory peaks
    of the command's own process tree. Popen returns once the child has exec'd, so no sample
    sees the pre-exec copy of this process."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with sampling(proc.pid, interval) as peak:
        output = proc.stdout.read().decode(errors="replace")
        # The last sample happens before the child is reaped: its pid cannot be reused yet.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    proc.wait()
    return Measured(proc.returncode, output, round(time.monotonic() - started, 2), peak)
