"""Production connectivity on the PRIVATE stack (its broker has SASL_SSL and mutual-TLS
listeners, its PostgreSQL TLS, all with certificates of its own CA): replay, ingest and lag over
SASL_SSL, a wrong password as one line naming the broker and the mechanism, Kafka mutual TLS,
and every PostgreSQL role's connection (ingest, dbt, Dagster's storage) with verify-full.

The shared broker gets these listeners at its next fresh start; it is never restarted here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
import sqlalchemy
from dagster_postgres.utils import get_conn_string
from psycopg import sql
from pydantic import SecretStr

from kafka_io.kafka_client import client_config
from kafka_io.lag import group_lag
from kafka_io.settings import without_password
from olist_assets.lib.dbt_project import DBT_PROJECT_DIR
from olist_dev.stack.common import unique_name
from tests.conftest import REPO_ROOT
from tests.kafka_io.private_stack import env_for

pytestmark = pytest.mark.services


def sasl_settings(stack, mechanism: str, password: str | None = None):
    s = stack.settings
    update = {
        "kafka_bootstrap_override": f"127.0.0.1:{s.kafka_sasl_port}",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": s.kafka_stack_user,
        "kafka_ssl_cafile": str(s.tls_dir / "ca.crt"),
    }
    if password is not None:
        update["kafka_sasl_password"] = SecretStr(password)
    return s.model_copy(update=update)


def kafka_env(s) -> dict[str, str]:
    """The OLIST_* a process needs to reach ``s``'s broker with its security settings."""
    return {
        **env_for(s),
        "OLIST_KAFKA_SECURITY_PROTOCOL": s.kafka_security_protocol,
        "OLIST_KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism or "",
        "OLIST_KAFKA_SASL_USERNAME": s.kafka_sasl_username or "",
        "OLIST_KAFKA_SASL_PASSWORD": s.kafka_sasl_password.get_secret_value(),
        "OLIST_KAFKA_SSL_CAFILE": s.kafka_ssl_cafile or "",
        # Nothing from the shared stack's secrets file.
        "OLIST_SECRETS_FILE": os.devnull,
    }


def runtime_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kafka_io", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300,
    )  # fmt: skip


def test_replay_ingest_and_lag_over_sasl_ssl_scram(private_stack):
    s = sasl_settings(private_stack, "SCRAM-SHA-512")
    topic, group = unique_name("t.sasl"), unique_name("g")
    schema = private_stack.new_schema(unique_name("t_raw"))
    env = kafka_env(s)

    replayed = runtime_cli(env, "replay", "--synthetic", "40", "--topic", topic,
                           "--partitions", "3")  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    events = int(replayed.stdout.split()[1])
    assert events > 40

    ingested = runtime_cli(env, "ingest", "--until-caught-up", "--topic", topic, "--group", group,
                           "--schema", schema, "--workers", "1")  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    assert f"{events} new events" in ingested.stdout
    with psycopg.connect(private_stack.settings.pg_dsn) as conn:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(schema, "raw_orders"))
        rows = conn.execute(query).fetchone()[0]
    assert rows == events
    # The group's committed offsets reached Kafka over SASL_SSL too: no lag left.
    lags = group_lag(s, group, topic)
    assert sum(p.end for p in lags) == events and sum(p.lag for p in lags) == 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_lag_over_sasl_ssl_with_the_other_mechanisms(private_stack, mechanism):
    topic = private_stack.new_topic(unique_name("t.sasl"), 2)
    lags = group_lag(sasl_settings(private_stack, mechanism), unique_name("g"), topic)
    assert [(p.partition, p.end, p.lag) for p in lags] == [(0, 0, 0), (1, 0, 0)]
    # The topic's id comes with the lag (the sensor's run key carries it).
    assert len({p.topic_id for p in lags}) == 1 and lags[0].topic_id


def test_a_wrong_sasl_password_is_one_line_naming_broker_and_mechanism(private_stack):
    s = sasl_settings(private_stack, "SCRAM-SHA-512", password="not-the-password")
    # Budget for a TLS + SCRAM handshake on a loaded 2-core machine; the refusal is the same.
    env = {**kafka_env(s), "OLIST_KAFKA_RETRY_SECONDS": "20"}
    result = runtime_cli(env, "ingest", "--until-caught-up", "--topic", "olist.orders",
                         "--schema", private_stack.new_schema(unique_name("t_raw")))  # fmt: skip
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"olist: error: Kafka at 127.0.0.1:{s.kafka_sasl_port} ")
    assert "SASL_SSL SCRAM-SHA-512" in lines[0]
    # The broker's refusal is named when kafka-python saw it within the budget. In the full
    # suite (after the private broker was killed and restarted by the fault tests) the client
    # sometimes only times out bootstrapping; the line still names broker and mechanism.
    assert "SaslAuthenticationFailedError" in lines[0] or (
        "KafkaTimeoutError: Unable to bootstrap" in lines[0]
    ), lines[0]
    assert "not-the-password" not in result.stderr + result.stdout


def test_sasl_without_credentials_is_refused_before_connecting(private_stack):
    s = sasl_settings(private_stack, "SCRAM-SHA-512")
    env = {**kafka_env(s), "OLIST_KAFKA_SASL_USERNAME": ""}
    result = runtime_cli(env, "replay", "--synthetic", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "olist: error: OLIST_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs OLIST_KAFKA_SASL_MECHANISM, "
        "OLIST_KAFKA_SASL_USERNAME and OLIST_KAFKA_SASL_PASSWORD"
    ]


def test_mutual_tls_needs_the_client_certificate(private_stack):
    s = private_stack.settings
    tls = s.tls_dir
    mtls = s.model_copy(
        update={
            "kafka_bootstrap_override": f"127.0.0.1:{s.kafka_mtls_port}",
            "kafka_security_protocol": "SSL",
            "kafka_ssl_cafile": str(tls / "ca.crt"),
            "kafka_ssl_certfile": str(tls / "client.crt"),
            "kafka_ssl_keyfile": str(tls / "client.key"),
        }
    )
    topic = private_stack.new_topic(unique_name("t.mtls"), 1)
    assert [p.end for p in group_lag(mtls, unique_name("g"), topic)] == [0]
    anonymous = mtls.model_copy(update={"kafka_ssl_certfile": None, "kafka_ssl_keyfile": None})
    with pytest.raises(Exception):  # noqa: B017 - the broker drops the handshake
        group_lag(anonymous, unique_name("g"), topic, timeout_ms=3000)
    assert client_config(mtls)["ssl_certfile"] == str(tls / "client.crt")


# --- PostgreSQL: every role with verify-full -------------------------------------------------


def verify_full(stack):
    s = stack.settings
    return s.model_copy(
        update={"pg_sslmode": "verify-full", "pg_sslrootcert": str(s.tls_dir / "ca.crt")}
    )


SSL_OF_THIS_SESSION = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"


def test_ingest_dsn_connects_with_verify_full_and_refuses_another_ca(private_stack, tmp_path):
    s = verify_full(private_stack)
    assert "sslmode=verify-full" in s.pg_dsn and "sslrootcert=" in s.pg_dsn
    with psycopg.connect(s.pg_dsn) as conn:
        assert conn.execute(SSL_OF_THIS_SESSION).fetchone() == (True,)
        assert conn.info.user == s.ingest_user
    # A CA that did not sign the server's certificate: refused, not silently unencrypted.
    from olist_dev.stack.tls import make_ca

    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(make_ca("another CA")[0])
    wrong = s.model_copy(update={"pg_sslrootcert": str(other_ca)})
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong.pg_dsn, connect_timeout=5)
    assert without_password(s.pg_dsn).startswith(f"postgresql://{s.ingest_user}@")


def test_dbt_profile_connects_with_verify_full(private_stack, tmp_path):
    s = verify_full(private_stack)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OLIST_", "PG"))},
        **s.dbt_env(),
    }
    assert env["OLIST_PG_SSLMODE"] == "verify-full"
    dbt = str(REPO_ROOT / ".venv/bin/dbt")
    result = subprocess.run(
        [dbt, "--no-use-colors", "debug", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--log-path", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Connection test: [OK connection ok]" in result.stdout
    bad = {**env, "OLIST_PG_SSLROOTCERT": str(tmp_path / "missing.crt")}
    refused = subprocess.run(
        [dbt, "--no-use-colors", "debug", "--connection", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir",
         str(DBT_PROJECT_DIR), "--log-path", str(tmp_path)],
        capture_output=True, text=True, env=bad, timeout=300,
    )  # fmt: skip
    assert refused.returncode != 0, "dbt connected without the CA it was told to trust"


def test_dagster_storage_connects_with_verify_full(private_stack, monkeypatch):
    """Dagster's storage URL (dagster_postgres builds it from dagster.yaml's postgres_db) with
    the PGSSL* variables our dagster_env / compose set for it."""
    s = verify_full(private_stack)
    env = s.dagster_storage_env()
    for key in ("PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.setenv(key, env[key])
    url = get_conn_string(
        username=env["OLIST_DAGSTER_PG_USER"],
        password=env["OLIST_DAGSTER_PG_PASSWORD"],
        hostname=env["OLIST_PG_HOST"],
        port=env["OLIST_PG_PORT"],
        db_name=env["OLIST_DAGSTER_PG_DATABASE"],
        scheme="postgresql+psycopg2",
    )
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text(SSL_OF_THIS_SESSION)).scalar() is True
        assert conn.execute(sqlalchemy.text("select current_user")).scalar() == s.dagster_pg_user
    monkeypatch.setenv("PGSSLROOTCERT", "/nonexistent/ca.crt")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        engine.connect()
