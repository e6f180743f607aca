"""The local stack without Docker: PostgreSQL from Debian's packages, Kafka from Maven Central.

`olist stack up | down | status`. All state lives under ``Settings.stack_dir`` (git-ignored).
"""

from kafka_io.stack.common import StackError
from kafka_io.stack.control import down, status_lines, up

__all__ = ["StackError", "down", "status_lines", "up"]
