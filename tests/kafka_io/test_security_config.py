"""Unit tests (no services) of the security plumbing: Kafka client kwargs and their refusals,
DSNs with TLS and without passwords, and the local stack's secrets, password file and
broker listeners."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from kafka_io.kafka_client import KafkaConfigError, client_config, kafka_address
from kafka_io.settings import Settings, pg_dsn, without_password
from olist_dev.settings import StackSettings
from olist_dev.stack.kafka import server_properties
from olist_dev.stack.secrets import (
    LEGACY_PASSWORDS,
    missing_secrets,
    parse_env_file,
    pgpass_line,
    render_env_file,
    secret_fields,
)
from olist_dev.stack.tls import TlsFiles


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_plaintext_config_is_just_the_bootstrap():
    assert client_config(settings(OLIST_KAFKA_BOOTSTRAP="k:9092")) == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_config_carries_mechanism_credentials_and_tls():
    s = settings(
        OLIST_KAFKA_BOOTSTRAP="b-1:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password="p@ss",
        kafka_ssl_cafile="/ca.pem",
    )
    assert client_config(s) == {
        "bootstrap_servers": "b-1:9096",
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "ssl_cafile": "/ca.pem",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p@ss",
    }
    assert kafka_address(s) == "b-1:9096 (SASL_SSL SCRAM-SHA-512)"
    assert "p@ss" not in repr(s)


def test_mutual_tls_config_has_the_client_certificate():
    s = settings(
        kafka_security_protocol="SSL",
        kafka_ssl_certfile="/c.crt",
        kafka_ssl_keyfile="/c.key",
        kafka_ssl_check_hostname=False,
    )
    config = client_config(s)
    assert (config["ssl_certfile"], config["ssl_keyfile"]) == ("/c.crt", "/c.key")
    assert config["ssl_check_hostname"] is False and "sasl_mechanism" not in config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "SASL_SSL needs OLIST_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "PLAIN needs OLIST_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.crt"},
            "OLIST_KAFKA_SSL_CERTFILE and OLIST_KAFKA_SSL_KEYFILE go together",
        ),
        ({"kafka_ssl_cafile": "/ca.pem"}, "PLAINTEXT does not use TLS"),
    ],
)
def test_contradicting_security_settings_are_one_line_before_connecting(values, message):
    with pytest.raises(KafkaConfigError, match=message) as caught:
        client_config(settings(**values))
    assert "\n" not in str(caught.value)


def test_a_bad_protocol_or_mechanism_is_refused_by_the_settings():
    with pytest.raises(ValueError, match="kafka_security_protocol"):
        settings(kafka_security_protocol="TLS")
    with pytest.raises(ValueError, match="kafka_sasl_mechanism"):
        settings(kafka_sasl_mechanism="GSSAPI")


def test_dsns_carry_tls_and_quote_everything_and_print_without_password():
    dsn = pg_dsn("u", "p:@/?", "h", 5432, "db", {"sslmode": "verify-full", "sslrootcert": "/a b"})
    assert dsn == "postgresql://u:p%3A%40%2F%3F@h:5432/db?sslmode=verify-full&sslrootcert=%2Fa%20b"
    assert (
        without_password(dsn) == "postgresql://u@h:5432/db?sslmode=verify-full&sslrootcert=%2Fa%20b"
    )
    assert pg_dsn("u", None, "h", 1, "db") == "postgresql://u@h:1/db"
    s = settings(ingest_password="secret", pg_sslmode="require")
    assert s.pg_dsn.endswith("/olist?sslmode=require") and ":secret@" in s.pg_dsn
    assert "secret" not in str(s)


def test_dbt_env_leaves_an_unset_password_unset(monkeypatch):
    # The session's stack fixture exports the stack's dbt password for in-process runs.
    monkeypatch.delenv("OLIST_DBT_PASSWORD", raising=False)
    assert "OLIST_DBT_PASSWORD" not in settings().dbt_env()
    env = settings(dbt_password="x", pg_sslmode="verify-full", pg_sslrootcert="/ca").dbt_env()
    assert (env["OLIST_DBT_PASSWORD"], env["OLIST_PG_SSLMODE"], env["OLIST_PG_SSLROOTCERT"]) == (
        "x", "verify-full", "/ca",
    )  # fmt: skip


def test_settings_read_unset_secrets_from_the_secrets_file(tmp_path, monkeypatch):
    path = tmp_path / "secrets.env"
    path.write_text("OLIST_INGEST_PASSWORD=from-file\nOLIST_DBT_PASSWORD=from-file\n")
    monkeypatch.setenv("OLIST_SECRETS_FILE", str(path))
    monkeypatch.setenv("OLIST_DBT_PASSWORD", "from-env")
    s = Settings()
    assert s.ingest_password.get_secret_value() == "from-file"
    assert s.dbt_password.get_secret_value() == "from-env"
    monkeypatch.setenv("OLIST_SECRETS_FILE", str(tmp_path / "missing.env"))
    assert Settings().ingest_password is None


def test_secret_fields_are_every_password():
    fields = set(secret_fields())
    assert set(LEGACY_PASSWORDS) | {"kafka_sasl_password"} <= fields
    assert all(name.endswith("password") for name in fields)


def test_missing_secrets_keep_an_existing_clusters_passwords_and_make_new_ones_random():
    s = StackSettings(_env_file=None, ingest_password="set-in-env")
    old = missing_secrets(s, {}, cluster_exists=True)
    assert "OLIST_INGEST_PASSWORD" not in old
    assert old["OLIST_PG_ADMIN_PASSWORD"] == "olist_admin"
    assert old["OLIST_KAFKA_SASL_PASSWORD"] != "olist"  # no legacy value: random
    new = missing_secrets(s, {}, cluster_exists=False)
    assert len(new["OLIST_PG_ADMIN_PASSWORD"]) >= 32 and new != missing_secrets(s, {}, False)
    assert missing_secrets(s, new, cluster_exists=False) == {}
    assert parse_env_file(render_env_file(new)) == new


def test_pgpass_line_escapes_colons_and_backslashes():
    assert pgpass_line("127.0.0.1", 55432, "u:1", "p\\:x") == "127.0.0.1:55432:*:u\\:1:p\\\\\\:x"


def test_broker_properties_add_sasl_and_mtls_listeners_only_with_tls(tmp_path: Path):
    # Ports given: the environment (e.g. a second stack's OLIST_KAFKA_PORT) must not matter.
    s = StackSettings(
        _env_file=None, kafka_sasl_password=SecretStr("pw"), kafka_port=9092,
        kafka_controller_port=9093, kafka_sasl_port=9094, kafka_mtls_port=9095,
    )  # fmt: skip
    plain = server_properties(s, tmp_path)
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:9092\n" in plain
    assert "SASL" not in plain
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "ca.key")
    secured = server_properties(s, tmp_path, tls)
    assert (
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,"
        "SSL://127.0.0.1:9095\n" in secured
    )
    assert (
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
        in secured
    )
    assert 'user_olist="pw";' in secured
    assert "listener.name.ssl.ssl.client.auth=required" in secured
    assert "inter.broker.listener.name=PLAINTEXT" in secured
