"""Process and port helpers shared by the PostgreSQL and Kafka halves of the local stack."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path


class StackError(RuntimeError):
    """A stack operation failed for a reason the user can act on (message names the cause)."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def check_ports_free(service: str, ports: list[int], variables: str) -> None:
    for port in ports:
        if port_in_use(port):
            raise StackError(
                f"port {port} ({service}) is already in use by another process; "
                f"free it or set {variables}"
            )


def pid_alive(pid: int | None, cmdline_marker: str) -> bool:
    """True if ``pid`` runs and its command line contains ``cmdline_marker`` (guards PID reuse)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return cmdline_marker.encode() in cmdline


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def default_signals() -> None:
    """preexec_fn: a server must not inherit ignored SIGINT/SIGTERM from its launcher."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def terminate(pid: int, marker: str, timeout: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL: stop one process by PID, never by name."""
    if not pid_alive(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(pid, marker), timeout):
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid, marker), 5)


def require_command(name: str, why: str) -> str:
    path = shutil.which(name)
    if not path:
        raise StackError(f"{name} not found on PATH: {why}")
    return path


def is_root() -> bool:
    return os.geteuid() == 0


def ensure_os_user(name: str) -> pwd.struct_passwd:
    """The unprivileged account that runs PostgreSQL (the server refuses to run as root)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def make_traversable(path: Path) -> list[Path]:
    """Give 'others' search (x) permission on ``path``'s ancestors that lack it.

    Needed when root runs the stack from e.g. a 0700 temp folder: the PostgreSQL user must be
    able to reach its data directory. Adds traversal only, never read. Returns what changed.
    """
    changed = []
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)
            changed.append(parent)
    return changed


def run_checked(cmd: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise StackError(f"{what} failed (exit {result.returncode}): " + " | ".join(detail))
    return result


def apt_install(package: str, missing: str) -> None:
    """Install Debian ``package`` with apt-get, as set-up does for what the stack and the tests
    need; not root: a StackError naming ``missing`` and the command to run instead."""
    if not is_root():
        raise StackError(f"{missing}: run `sudo apt-get install {package}`")
    print(f"installing {package} from Debian packages (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_checked(["apt-get", "update", "-q"], "apt-get update", env=env)
    run_checked(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
        f"apt-get install {package}",
        env=env,
    )


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def unique_name(prefix: str) -> str:
    """A name no other run uses: isolated schemas, topics and groups of tests and benchmarks."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
