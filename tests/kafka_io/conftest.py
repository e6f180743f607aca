"""Fixtures of the ingestion tests: a private stack for the tests that stop or kill a server."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from olist_dev.settings import StackSettings
from tests.kafka_io.private_stack import PrivateStack


@pytest.fixture(scope="session")
def private_stack_session() -> Iterator[PrivateStack]:
    """One PostgreSQL and one broker for the whole session (Kafka takes a while to start).

    Not under pytest's basetemp: every pytest session (other people's too) resets
    /tmp/pytest-of-<user> to 0700 and prunes old runs, which would lock the PostgreSQL user out
    of its data directory (pg_ctl stop fails) or delete it mid-run."""
    stack_dir = Path(tempfile.mkdtemp(prefix="olist-private-stack-"))
    stack = PrivateStack(StackSettings(), stack_dir)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
        shutil.rmtree(stack_dir, ignore_errors=True)


@pytest.fixture
def private_stack(private_stack_session: PrivateStack) -> PrivateStack:
    """The private stack, both servers up (a test before may have left one down)."""
    stack = private_stack_session
    if not stack.pg.running():
        stack.start_postgres()
    if not stack.kafka.running():
        stack.start_kafka()
    return stack
