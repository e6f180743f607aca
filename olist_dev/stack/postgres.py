"""PostgreSQL half of the local stack: install (apt), initdb, start/stop as an unprivileged user,
and provision the databases and least-privilege roles."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from pydantic import SecretStr

from olist_dev.settings import StackSettings
from olist_dev.stack.common import (
    StackError,
    apt_install,
    check_ports_free,
    default_signals,
    ensure_os_user,
    is_root,
    make_traversable,
    pid_alive,
    read_pid,
    run_checked,
    tail,
    write_private,
)
from olist_dev.stack.tls import ensure_tls

MARKER = "postgres"


def required_password(role: str, password: SecretStr | None) -> str:
    if password is None:
        raise StackError(f"no password for role {role}: run `olist stack up` (it generates them)")
    return password.get_secret_value()


def admin_password(s: StackSettings) -> str:
    return required_password(s.pg_admin_user, s.pg_admin_password)


def _bin_dir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    return Path(candidates[-1]).parent if candidates else None


def ensure_installed() -> Path:
    """Debian's server binaries; installed with apt when missing and we are root."""
    bin_dir = _bin_dir()
    if bin_dir:
        return bin_dir
    apt_install(
        "postgresql", "PostgreSQL server not installed (no /usr/lib/postgresql/*/bin/pg_ctl)"
    )
    bin_dir = _bin_dir()
    if not bin_dir:
        raise StackError("apt-get installed postgresql but no pg_ctl was found")
    return bin_dir


class Postgres:
    def __init__(self, settings: StackSettings):
        self.s = settings
        self.root = settings.stack_dir / "pg"
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.log = self.root / "postgres.log"

    # --- state -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        return read_pid(self.data / "postmaster.pid")

    def running(self) -> bool:
        return pid_alive(self.pid(), MARKER)

    def check_ports(self) -> None:
        check_ports_free("PostgreSQL", [self.s.pg_port], "OLIST_PG_PORT")

    def _as_server_user(self) -> dict:
        """subprocess kwargs that drop to the unprivileged user when we are root."""
        if not is_root():
            return {}
        user = ensure_os_user(self.s.pg_os_user)
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    # --- lifecycle ---------------------------------------------------------------------------
    def up(self) -> str:
        if self.running():
            # Provisioning is idempotent: a running stack gets new roles and privileges too.
            self.provision()
            return f"PostgreSQL already running (pid {self.pid()}, port {self.s.pg_port})"
        self.check_ports()
        bin_dir = ensure_installed()
        self._prepare_dirs()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(bin_dir)
        result = subprocess.run(
            [
                str(bin_dir / "pg_ctl"),
                "-D", str(self.data),
                "-l", str(self.log),
                "-w", "-t", "60",
                "-o", f"-p {self.s.pg_port} -k {self.sockets} -c listen_addresses=127.0.0.1"
                + self._tls_options(),
                "start",
            ],
            capture_output=True,
            text=True,
            start_new_session=True,
            preexec_fn=default_signals,
            **self._as_server_user(),
        )  # fmt: skip
        if result.returncode != 0 or not self.running():
            raise StackError(
                f"PostgreSQL failed to start on port {self.s.pg_port}: "
                f"{result.stderr.strip()}\n{tail(self.log)}"
            )
        self.provision()
        return f"PostgreSQL started (pid {self.pid()}, port {self.s.pg_port})"

    def down(self, mode: str = "fast") -> str:
        """pg_ctl stop: ``fast`` (the default) checkpoints; ``immediate`` is a crash (fault
        tests on a private stack), recovered from the WAL on the next start."""
        if not self.running():
            return "PostgreSQL not running"
        bin_dir = ensure_installed()
        run_checked(
            [str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            "pg_ctl stop",
            **self._as_server_user(),
        )
        return "PostgreSQL stopped (data kept)"

    def _prepare_dirs(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if is_root():
            user = ensure_os_user(self.s.pg_os_user)
            changed = make_traversable(self.root)
            if changed:
                print(f"note: allowed traversal (o+x) of {', '.join(map(str, changed))}")
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
            if self.log.exists():
                os.chown(self.log, user.pw_uid, user.pw_gid)

    def _tls_options(self) -> str:
        """Server options for TLS with the stack CA's certificate (``pg_tls``), else none."""
        if not self.s.pg_tls:
            return ""
        files = ensure_tls(self.s.tls_dir)
        # The server reads its key as its own user, and refuses a key others can read.
        cert, key = self.root / "server.crt", self.root / "server.key"
        shutil.copyfile(files.cert("postgres"), cert)
        write_private(key, files.key("postgres").read_bytes())
        if is_root():
            user = ensure_os_user(self.s.pg_os_user)
            for path in (cert, key):
                os.chown(path, user.pw_uid, user.pw_gid)
        return f" -c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key}"

    def _initdb(self, bin_dir: Path) -> None:
        # The password file must be readable by the server user; it is deleted right after.
        with tempfile.NamedTemporaryFile("w", dir=self.root, delete=False) as pwfile:
            pwfile.write(admin_password(self.s) + "\n")
        try:
            if is_root():
                user = ensure_os_user(self.s.pg_os_user)
                os.chown(pwfile.name, user.pw_uid, user.pw_gid)
            run_checked(
                [
                    str(bin_dir / "initdb"),
                    "-D", str(self.data),
                    "-U", self.s.pg_admin_user,
                    f"--pwfile={pwfile.name}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                "initdb",
                **self._as_server_user(),
            )  # fmt: skip
        finally:
            os.unlink(pwfile.name)
        with (self.data / "postgresql.conf").open("a") as conf:
            # Dagster's webserver, daemon and runs each hold connections.
            conf.write("\n# olist local stack\nmax_connections = 200\n")

    # --- provisioning ------------------------------------------------------------------------
    def provision(self) -> None:
        """Databases and least-privilege roles; idempotent, runs on every `up`."""
        s = self.s
        with psycopg.connect(s.pg_admin_dsn, autocommit=True) as conn:
            for role, password in s.login_roles().items():
                upsert_login_role(conn, role, required_password(role, password))
            for db, owner in (
                (s.pg_database, s.pg_admin_user),
                (s.dagster_pg_database, s.dagster_pg_user),
            ):
                if not conn.execute(
                    "select 1 from pg_database where datname = %s", [db]
                ).fetchone():
                    conn.execute(
                        sql.SQL("create database {} owner {}").format(
                            sql.Identifier(db), sql.Identifier(owner)
                        )
                    )
            restrict_dagster_database(conn, s)
        with psycopg.connect(s.admin_dsn_for(s.pg_database), autocommit=True) as conn:
            grant_warehouse_privileges(conn, s, s.pg_database)
            provision_raw_schema(conn, s, s.raw_schema)
            provision_dbt_schemas(conn, s, s.schema_prefix)
            grant_reader_privileges(conn, s, s.analytics_schema)


def upsert_login_role(conn: psycopg.Connection, role: str, password: str) -> None:
    """A login role (no SUPERUSER, CREATEDB or CREATEROLE: the defaults) with this password,
    created or updated; its rights are granted apart."""
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [role]).fetchone()
    conn.execute(
        sql.SQL(("alter" if exists else "create") + " role {} login password {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )


def restrict_dagster_database(conn: psycopg.Connection, s: StackSettings) -> None:
    """Only its owner (the Dagster role) connects to Dagster's database (PUBLIC may by default)."""
    conn.execute(
        sql.SQL("revoke all on database {} from public").format(
            sql.Identifier(s.dagster_pg_database)
        )
    )


def grant_warehouse_privileges(conn: psycopg.Connection, s: StackSettings, database: str) -> None:
    """Who may connect to the warehouse, and what they may create: nothing at database level.

    PUBLIC loses CONNECT (so the Dagster role cannot connect) and nobody creates in `public`;
    ingestion and dbt connect and may use temp tables (dbt's incremental models do). dbt gets
    no CREATE on the database: its schemas exist already, owned by it (provision_dbt_schemas),
    so it cannot create any other. Revokes undo what earlier versions granted.
    """
    ids = {
        "db": sql.Identifier(database),
        "ing": sql.Identifier(s.ingest_user),
        "dbt": sql.Identifier(s.dbt_user),
    }
    for statement in (
        "revoke all on database {db} from public",
        "revoke create on database {db} from {dbt}",
        "grant connect, temporary on database {db} to {ing}, {dbt}",
        "revoke create on schema public from public",
    ):
        conn.execute(sql.SQL(statement).format(**ids))


def provision_dbt_schemas(conn: psycopg.Connection, s: StackSettings, prefix: str = "") -> None:
    """dbt's own schemas (``prefix`` + staging, analytics), owned by the dbt role: it builds in
    them and creates no other. Also used by tests and sandboxes for their schema prefix."""
    for layer in ("staging", "analytics"):
        ids = {"schema": sql.Identifier(prefix + layer), "dbt": sql.Identifier(s.dbt_user)}
        conn.execute(
            sql.SQL("create schema if not exists {schema} authorization {dbt}").format(**ids)
        )
        conn.execute(sql.SQL("alter schema {schema} owner to {dbt}").format(**ids))


def admin_connect(settings: StackSettings) -> psycopg.Connection:
    """Superuser connection to the warehouse database (set-up, isolation, assertions)."""
    return psycopg.connect(settings.admin_dsn_for(settings.pg_database), autocommit=True)


def provision_raw_schema(conn: psycopg.Connection, s: StackSettings, schema: str) -> None:
    """A raw schema owned by the ingestion role, readable (only) by the dbt role.

    Also used by tests to give each test its own raw schema with production privileges.
    """
    ids = {
        "schema": sql.Identifier(schema),
        "ing": sql.Identifier(s.ingest_user),
        "dbt": sql.Identifier(s.dbt_user),
    }
    conn.execute(sql.SQL("create schema if not exists {schema} authorization {ing}").format(**ids))
    conn.execute(sql.SQL("grant usage on schema {schema} to {dbt}").format(**ids))
    conn.execute(sql.SQL("grant select on all tables in schema {schema} to {dbt}").format(**ids))
    conn.execute(
        sql.SQL(
            "alter default privileges for role {ing} in schema {schema} grant select on tables to {dbt}"
        ).format(**ids)
    )


def grant_reader_privileges(conn: psycopg.Connection, s: StackSettings, analytics: str) -> None:
    """The read-only login role (the dashboard's; provisioned with the other login roles):
    CONNECT on the warehouse and SELECT on the marts' schema ``analytics``, including the tables
    dbt creates later; nothing on raw or staging.

    The schema is created here (owned by the dbt role, as dbt would) when dbt has not built it
    yet, because default privileges need it. Also used by tests and benchmarks for their own
    schema prefix.
    """
    ids = {
        "db": sql.Identifier(conn.info.dbname),
        "schema": sql.Identifier(analytics),
        "dbt": sql.Identifier(s.dbt_user),
        "reader": sql.Identifier(s.reader_user),
    }
    for statement in (
        "grant connect on database {db} to {reader}",
        "create schema if not exists {schema} authorization {dbt}",
        "grant usage on schema {schema} to {reader}",
        "grant select on all tables in schema {schema} to {reader}",
        "alter default privileges for role {dbt} in schema {schema} grant select on tables to {reader}",
    ):
        conn.execute(sql.SQL(statement).format(**ids))
