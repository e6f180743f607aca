"""The one place Kafka clients get their connection: bootstrap servers and security (TLS, SASL).

Every KafkaProducer, KafkaConsumer and KafkaAdminClient of the project is built with
``**client_config(settings)``, so a broker that needs SASL_SSL or mutual TLS works for replay,
ingestion, lag, audit, the Dagster sensor and the benchmarks alike.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.errors import AuthorizationError, SaslAuthenticationFailedError

from kafka_io.errors import IngestError, one_line
from kafka_io.settings import Settings, secret_value


class KafkaConfigError(IngestError):
    """The Kafka security settings contradict each other (one line naming the setting)."""


def security_problem(s: Settings) -> str | None:
    """Why the security settings cannot work, or None."""
    protocol = s.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    if sasl and not (s.kafka_sasl_mechanism and s.kafka_sasl_username and s.kafka_sasl_password):
        return (
            f"OLIST_KAFKA_SECURITY_PROTOCOL={protocol} needs OLIST_KAFKA_SASL_MECHANISM, "
            "OLIST_KAFKA_SASL_USERNAME and OLIST_KAFKA_SASL_PASSWORD"
        )
    if not sasl and s.kafka_sasl_mechanism:
        return (
            f"OLIST_KAFKA_SASL_MECHANISM={s.kafka_sasl_mechanism} needs "
            "OLIST_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
        )
    if bool(s.kafka_ssl_certfile) != bool(s.kafka_ssl_keyfile):
        return "OLIST_KAFKA_SSL_CERTFILE and OLIST_KAFKA_SSL_KEYFILE go together (mutual TLS)"
    tls_files = s.kafka_ssl_cafile or s.kafka_ssl_certfile
    if tls_files and not protocol.endswith("SSL"):
        return f"TLS files are set but OLIST_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS"
    return None


def client_config(s: Settings) -> dict[str, Any]:
    """The kwargs every kafka-python client takes: bootstrap servers plus security.

    Raises KafkaConfigError (an operator mistake, one line) before any connection is tried."""
    if (problem := security_problem(s)) is not None:
        raise KafkaConfigError(problem)
    config: dict[str, Any] = {
        "bootstrap_servers": s.kafka_bootstrap,
        "security_protocol": s.kafka_security_protocol,
    }
    if s.kafka_security_protocol.endswith("SSL"):
        config["ssl_check_hostname"] = s.kafka_ssl_check_hostname
        optional = {
            "ssl_cafile": s.kafka_ssl_cafile,
            "ssl_certfile": s.kafka_ssl_certfile,
            "ssl_keyfile": s.kafka_ssl_keyfile,
        }
        config.update({k: v for k, v in optional.items() if v})
    if s.kafka_security_protocol.startswith("SASL_"):
        config.update(
            sasl_mechanism=s.kafka_sasl_mechanism,
            sasl_plain_username=s.kafka_sasl_username,
            sasl_plain_password=secret_value(s.kafka_sasl_password),
        )
    return config


def kafka_address(s: Settings) -> str:
    """How errors name the broker: its address, and the protocol/mechanism when not plain."""
    if s.kafka_security_protocol == "PLAINTEXT":
        return s.kafka_bootstrap
    how = s.kafka_security_protocol
    if s.kafka_sasl_mechanism and how.startswith("SASL_"):
        how += f" {s.kafka_sasl_mechanism}"
    return f"{s.kafka_bootstrap} ({how})"


class _AuthFailures(logging.Filter):
    """Remembers the broker's SASL/authorization refusals, which kafka-python only logs (its
    bootstrap then times out as 'Unable to bootstrap'), so the error can name the real cause."""

    last: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, (SaslAuthenticationFailedError, AuthorizationError)):
                _AuthFailures.last = arg
        # Passed on only as far as the `kafka` logger's own level allows (the CLI quiets it).
        return record.levelno >= logging.getLogger("kafka").getEffectiveLevel()


_manager_log = logging.getLogger("kafka.net.manager")
_manager_log.setLevel(logging.WARNING)  # its refusals must reach the filter whatever `kafka` says
_manager_log.addFilter(_AuthFailures())


def kafka_failure(exc: BaseException) -> str:
    """One line on why a Kafka call failed: the broker's authentication refusal if it gave
    one (a timeout alone would hide a wrong password), else the error itself."""
    refused = _AuthFailures.last
    if refused is not None:
        return f"{type(refused).__name__}: {one_line(refused)}"
    return f"{type(exc).__name__}: {one_line(exc)}" if not str(exc) else one_line(exc)
