"""The local stack's passwords: generated once into ``<stack_dir>/secrets.env`` (0600), which
`Settings` reads for every unset ``OLIST_*`` secret, and a libpq password file
``<stack_dir>/pgpass`` (0600) so psql and friends connect with DSNs that carry no password.

A stack provisioned before this file existed keeps the passwords it has (the former fixed
ones), so its running clients go on working; a new stack gets random ones.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from kafka_io.settings import SECRETS_FILE_NAME
from olist_dev.settings import StackSettings
from olist_dev.stack.common import write_private

# What a stack provisioned before secrets.env was set up with (the name was the password).
LEGACY_PASSWORDS = {
    "pg_admin_password": "olist_admin",
    "ingest_password": "olist_ingest",
    "dbt_password": "olist_dbt",
    "dagster_pg_password": "olist_dagster",
    "reader_password": "olist_reader",
}


def secret_fields(settings_type: type[StackSettings] = StackSettings) -> list[str]:
    """Every password field of the settings (annotated ``SecretStr | None``)."""
    return [
        name
        for name, field in settings_type.model_fields.items()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    ]


def env_name(field: str) -> str:
    return f"OLIST_{field.upper()}"


def secrets_path(s: StackSettings) -> Path:
    return s.stack_dir / SECRETS_FILE_NAME


def pgpass_path(s: StackSettings) -> Path:
    return s.stack_dir / "pgpass"


def parse_env_file(text: str) -> dict[str, str]:
    lines = (line.strip() for line in text.splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def render_env_file(values: dict[str, str]) -> str:
    header = (
        "# olist local stack: passwords generated once (0600). Settings read an unset OLIST_*\n"
        "# secret from here; the environment wins.\n"
    )
    return header + "".join(f"{key}={value}\n" for key, value in sorted(values.items()))


def new_password() -> str:
    # URL- and dotenv-safe (no quoting needed anywhere it goes).
    return secrets.token_urlsafe(24)


def missing_secrets(s: StackSettings, stored: dict[str, str], cluster_exists: bool) -> dict:
    """Values for the secrets neither the environment nor the file gives: the legacy password
    of a cluster provisioned before the file existed, else a random one."""
    return {
        env_name(field): LEGACY_PASSWORDS[field]
        if cluster_exists and field in LEGACY_PASSWORDS
        else new_password()
        for field in secret_fields(type(s))
        if getattr(s, field) is None and env_name(field) not in stored
    }


def ensure_secrets(s: StackSettings, write: bool = True) -> StackSettings:
    """``s`` with every password set, generating what is missing into the secrets file once
    (``write=False``: only in memory, e.g. before the ports are known to be free)."""
    path = secrets_path(s)
    stored = parse_env_file(path.read_text()) if path.exists() else {}
    cluster_exists = (s.stack_dir / "pg" / "data" / "PG_VERSION").exists()
    if added := missing_secrets(s, stored, cluster_exists):
        stored.update(added)
        if write:
            write_private(path, render_env_file(stored).encode())
    update = {
        field: SecretStr(stored[env_name(field)])
        for field in secret_fields(type(s))
        if getattr(s, field) is None and env_name(field) in stored
    }
    return s.model_copy(update=update)


def pgpass_line(host: str, port: int, user: str, password: str) -> str:
    """One line of a libpq password file (``:`` and ``\\`` escaped), any database."""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return ":".join([escape(host), str(port), "*", escape(user), escape(password)])


def write_pgpass(s: StackSettings) -> Path:
    """The libpq password file of every role of the stack (PGPASSFILE)."""
    roles = {s.pg_admin_user: s.pg_admin_password, **s.login_roles()}
    lines = [
        pgpass_line(s.pg_host, s.pg_port, user, password.get_secret_value())
        for user, password in roles.items()
        if password is not None
    ]
    path = pgpass_path(s)
    write_private(path, ("\n".join(lines) + "\n").encode())
    return path
