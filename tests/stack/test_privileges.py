"""Least privilege on the local stack, tested AS the roles: each one is refused what it must not
do (and, as a control, can do its own job), with PostgreSQL's own errors."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors, sql

from kafka_io.migrations import migrate
from olist_dev.stack.postgres import grant_reader_privileges, provision_dbt_schemas
from tests.conftest import unique_name

pytestmark = pytest.mark.services


def connect_as(settings, user: str, password, database: str) -> psycopg.Connection:
    return psycopg.connect(settings.dsn_for(user, password, database), autocommit=True)


def refused(conn: psycopg.Connection, statement: sql.Composable | str) -> str:
    """The InsufficientPrivilege message ``statement`` gets (fails the test if it succeeds)."""
    with pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    return str(caught.value)


def test_ingest_cannot_read_staging_or_analytics(settings):
    with connect_as(
        settings, settings.ingest_user, settings.ingest_password, settings.pg_database
    ) as c:
        for schema in ("staging", "analytics"):
            query = sql.SQL("select * from {}").format(sql.Identifier(schema, "fact_orders"))
            assert f"permission denied for schema {schema}" in refused(c, query)


def test_ingest_reads_nothing_dbt_built(settings, admin_conn):
    """Also on a table that exists: the marts of a prefix provisioned as production's."""
    prefix = unique_name("t") + "_"
    provision_dbt_schemas(admin_conn, settings, prefix)
    try:
        table = sql.Identifier(prefix + "analytics", "fact_orders")
        with connect_as(
            settings, settings.dbt_user, settings.dbt_password, settings.pg_database
        ) as dbt:
            dbt.execute(sql.SQL("create table {} (order_id text)").format(table))
            dbt.execute(sql.SQL("insert into {} values ('o1')").format(table))
        with connect_as(
            settings, settings.ingest_user, settings.ingest_password, settings.pg_database
        ) as ing:
            refused(ing, sql.SQL("select * from {}").format(table))
    finally:
        for layer in ("staging", "analytics"):
            admin_conn.execute(
                sql.SQL("drop schema {} cascade").format(sql.Identifier(prefix + layer))
            )


def test_dbt_cannot_write_raw_but_reads_it(settings, raw_schema):
    with connect_as(
        settings, settings.ingest_user, settings.ingest_password, settings.pg_database
    ) as ing:
        migrate(ing, raw_schema)
    raw = sql.Identifier(raw_schema, "raw_orders")
    with connect_as(
        settings, settings.dbt_user, settings.dbt_password, settings.pg_database
    ) as dbt:
        assert dbt.execute(sql.SQL("select count(*) from {}").format(raw)).fetchone() == (0,)
        refused(dbt, sql.SQL("insert into {} (event_id) values ('x')").format(raw))
        refused(dbt, sql.SQL("delete from {}").format(raw))
        refused(dbt, sql.SQL("create table {} (n int)").format(sql.Identifier(raw_schema, "t")))


def test_dbt_creates_only_in_its_own_schemas(settings):
    name = unique_name("t_rogue")
    with connect_as(
        settings, settings.dbt_user, settings.dbt_password, settings.pg_database
    ) as dbt:
        refused(dbt, sql.SQL("create schema {}").format(sql.Identifier(name)))
        # `if not exists` on its own schema is refused too (PostgreSQL checks CREATE first): the
        # reason dbt/macros/incremental_state.sql only creates a missing schema.
        refused(dbt, "create schema if not exists staging")
        assert dbt.execute(
            "select has_schema_privilege(current_user, 'staging', 'CREATE'),"
            " has_schema_privilege(current_user, 'analytics', 'CREATE')"
        ).fetchone() == (True, True)


def test_only_the_dagster_role_connects_to_the_dagster_database(settings):
    for user, password in (
        (settings.ingest_user, settings.ingest_password),
        (settings.dbt_user, settings.dbt_password),
    ):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect_as(settings, user, password, settings.dagster_pg_database)
    with connect_as(
        settings,
        settings.dagster_pg_user,
        settings.dagster_pg_password,
        settings.dagster_pg_database,
    ) as conn:
        assert conn.execute("select current_user").fetchone() == (settings.dagster_pg_user,)


def test_the_dagster_role_cannot_connect_to_the_warehouse(settings):
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_as(
            settings, settings.dagster_pg_user, settings.dagster_pg_password, settings.pg_database
        )


def test_nobody_creates_tables_in_public(settings):
    table = sql.Identifier("public", unique_name("t_public"))
    warehouse_roles = {
        user: password
        for user, password in settings.login_roles().items()
        if user != settings.dagster_pg_user  # it cannot even connect (test above)
    }
    assert {settings.ingest_user, settings.dbt_user} <= warehouse_roles.keys()
    for user, password in warehouse_roles.items():
        with connect_as(settings, user, password, settings.pg_database) as conn:
            refused(conn, sql.SQL("create table {} (n int)").format(table))


def test_the_reader_reads_the_marts_and_nothing_else(settings, admin_conn, raw_schema):
    """The dashboard's role, on marts and raw tables that exist (a prefix provisioned as
    production's): it selects the marts, and is refused raw, staging, writes, new tables and
    Dagster's database."""
    prefix = unique_name("t") + "_"
    provision_dbt_schemas(admin_conn, settings, prefix)
    grant_reader_privileges(admin_conn, settings, prefix + "analytics")
    mart = sql.Identifier(prefix + "analytics", "fact_orders")
    staged = sql.Identifier(prefix + "staging", "stg_orders")
    raw = sql.Identifier(raw_schema, "raw_orders")
    try:
        with connect_as(
            settings, settings.dbt_user, settings.dbt_password, settings.pg_database
        ) as dbt:
            for table in (mart, staged):
                dbt.execute(sql.SQL("create table {} (order_id text)").format(table))
                dbt.execute(sql.SQL("insert into {} values ('o1')").format(table))
        with connect_as(
            settings, settings.ingest_user, settings.ingest_password, settings.pg_database
        ) as ing:
            ing.execute(sql.SQL("create table {} (event_id text)").format(raw))
        user, password = settings.reader_user, settings.reader_password
        with connect_as(settings, user, password, settings.pg_database) as reader:
            assert reader.execute(sql.SQL("select * from {}").format(mart)).fetchall() == [("o1",)]
            refused(reader, sql.SQL("select * from {}").format(raw))
            refused(reader, sql.SQL("select * from {}").format(staged))
            refused(reader, sql.SQL("insert into {} values ('o2')").format(mart))
            refused(reader, sql.SQL("create table {} (n int)").format(
                sql.Identifier(prefix + "analytics", "t_new")))  # fmt: skip
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect_as(settings, user, password, settings.dagster_pg_database)
    finally:
        for layer in ("staging", "analytics"):
            admin_conn.execute(
                sql.SQL("drop schema {} cascade").format(sql.Identifier(prefix + layer))
            )
