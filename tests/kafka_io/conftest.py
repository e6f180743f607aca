"""Fixtures of the ingestion tests: a private stack for the tests that stop or kill a server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kafka_io.settings import get_settings
from tests.kafka_io.private_stack import PrivateStack


@pytest.fixture(scope="session")
def private_stack_session(tmp_path_factory) -> Iterator[PrivateStack]:
    """One PostgreSQL and one broker for the whole session (Kafka takes a while to start)."""
    stack = PrivateStack(get_settings(), tmp_path_factory.mktemp("private_stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.close()


@pytest.fixture
def private_stack(private_stack_session: PrivateStack) -> PrivateStack:
    """The private stack, both servers up (a test before may have left one down)."""
    stack = private_stack_session
    if not stack.pg.running():
        stack.start_postgres()
    if not stack.kafka.running():
        stack.start_kafka()
    return stack
