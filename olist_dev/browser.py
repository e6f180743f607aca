"""The browser the browser tests drive: Debian's chromium (Playwright's own download cannot be
fetched here), installed with apt-get by `olist setup browser` (`make test`) when missing."""

from __future__ import annotations

from pathlib import Path

from olist_dev.stack.common import StackError, apt_install

CHROMIUM = Path("/usr/bin/chromium")
# Root in a container has no user namespaces for chromium's sandbox.
CHROMIUM_ARGS = ("--no-sandbox",)


def ensure_chromium(path: Path | None = None) -> str:
    """``path`` (default CHROMIUM) when chromium is there, else installed from Debian's packages
    (root only; else a StackError naming the command); returns the line to print."""
    path = path or CHROMIUM
    if path.exists():
        return f"chromium: {path}"
    apt_install("chromium", f"chromium not installed (no {path}; the browser tests drive it)")
    if not path.exists():
        raise StackError(f"apt-get installed chromium but {path} is still missing")
    return f"chromium: installed {path}"
