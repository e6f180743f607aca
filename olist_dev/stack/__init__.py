"""The local stack without Docker: PostgreSQL from Debian's packages, Kafka from Maven Central.

`olist stack up | down | status`. All state lives under ``Settings.stack_dir`` (git-ignored).
"""

from olist_dev.stack.common import StackError
from olist_dev.stack.control import down, status_lines, up

__all__ = ["StackError", "down", "status_lines", "up"]
