#!/usr/bin/env bash
# First start only (the postgres image runs /docker-entrypoint-initdb.d/* when the data volume
# is empty): the warehouse and Dagster databases and the least-privilege roles, as `olist stack
# up` provisions them locally. Names and passwords come from the container's environment
# (.env), never from this file; psql's :'var' / :"var" quote them as literals / identifiers.
set -euo pipefail

: "${OLIST_INGEST_PASSWORD:?}" "${OLIST_DBT_PASSWORD:?}" "${OLIST_DAGSTER_PG_PASSWORD:?}"
: "${OLIST_READER_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v warehouse="${OLIST_PG_DATABASE:-olist}" \
    -v raw_schema="${OLIST_RAW_SCHEMA:-raw}" \
    -v ingest_user="${OLIST_INGEST_USER:-olist_ingest}" \
    -v ingest_password="$OLIST_INGEST_PASSWORD" \
    -v dbt_user="${OLIST_DBT_USER:-olist_dbt}" \
    -v dbt_password="$OLIST_DBT_PASSWORD" \
    -v reader_user="${OLIST_READER_USER:-olist_reader}" \
    -v reader_password="$OLIST_READER_PASSWORD" \
    -v dagster_db="${OLIST_DAGSTER_PG_DATABASE:-dagster}" \
    -v dagster_user="${OLIST_DAGSTER_PG_USER:-olist_dagster}" \
    -v dagster_password="$OLIST_DAGSTER_PG_PASSWORD" \
    <<'SQL'
-- Roles: login only, no superuser, no CREATEDB, no CREATEROLE.
create role :"ingest_user" login password :'ingest_password';
create role :"dbt_user" login password :'dbt_password';
create role :"dagster_user" login password :'dagster_password';
create role :"reader_user" login password :'reader_password';

-- Dagster's instance database belongs to its role; nobody else connects to it.
create database :"dagster_db" owner :"dagster_user";
revoke all on database :"dagster_db" from public;

-- Warehouse: ingestion and dbt connect (and may use temp tables); nobody creates schemas:
-- dbt's own (staging, analytics) are made for it below, as `olist stack up` does.
create database :"warehouse";
revoke all on database :"warehouse" from public;
grant connect, temporary on database :"warehouse" to :"ingest_user", :"dbt_user";
-- The dashboard's role only connects and reads the marts (below).
grant connect on database :"warehouse" to :"reader_user";

\connect :"warehouse"
-- Nobody creates tables in public (PostgreSQL 15+ default, kept explicit).
revoke create on schema public from public;
-- dbt builds in its schemas only.
create schema staging authorization :"dbt_user";
create schema analytics authorization :"dbt_user";
-- raw belongs to ingestion; dbt reads it, including tables created later.
create schema :"raw_schema" authorization :"ingest_user";
grant usage on schema :"raw_schema" to :"dbt_user";
alter default privileges for role :"ingest_user" in schema :"raw_schema"
    grant select on tables to :"dbt_user";

-- The dashboard's role reads the marts, including the tables dbt creates later, and
-- nothing else.
grant usage on schema analytics to :"reader_user";
alter default privileges for role :"dbt_user" in schema analytics
    grant select on tables to :"reader_user";
SQL
