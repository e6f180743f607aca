"""Errors that end ingestion: each one's str() is the single line the CLI prints.

The Dagster asset catches IngestError to fail its run with the cause; the CLI prints it as
``olist: error: ...`` and exits 1, with no traceback.
"""

from __future__ import annotations


class IngestError(RuntimeError):
    """Ingestion cannot go on; str() is one line naming the cause."""

    def __reduce__(self):
        # Picklable whatever a subclass's __init__ takes: a worker process sends it to its
        # parent, which re-raises it as the command's one line.
        return _rebuild, (type(self), str(self), self.__dict__)


def _rebuild(cls: type[IngestError], message: str, state: dict) -> IngestError:
    error = Exception.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ServiceUnavailableError(IngestError):
    """PostgreSQL or Kafka unreachable after the bounded retries.

    The message names the service and its address, never a password.
    """

    def __init__(self, service: str, address: str, seconds: float, cause: str) -> None:
        self.service = service
        self.address = address
        self.seconds = seconds
        self.cause = one_line(cause)
        super().__init__(f"{service} at {address} unavailable for {seconds:g}s: {self.cause}")


class OffsetMismatchError(IngestError):
    """The stored offset does not match Kafka's log (recreated or truncated topic, reset)."""

    def __init__(
        self, topic: str, partition: int, stored: int | str, kafka: str, reason: str
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.stored = stored
        self.kafka = kafka
        self.reason = reason
        super().__init__(
            f"offset mismatch on {topic}[{partition}]: stored next_offset {stored}, "
            f"Kafka {kafka} ({reason}); see `olist offsets reset --help`"
        )


def one_line(text: object) -> str:
    """The first non-empty line of an error's text: the CLI's contract is a single line."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return type(text).__name__ if isinstance(text, BaseException) else ""
