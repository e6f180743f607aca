{#-
    Incremental bookkeeping for the marts.

    The marts keep exactly the contract's columns, so they cannot carry their own watermark
    column. Instead each mart records, in one small table in the staging schema, the highest
    raw_orders.ingested_at its last build incorporated (`source_ingested_at`). The row is
    written by a post-hook inside the model's transaction, so it commits atomically with
    the rows it describes. A missing row means "never built": the next run recomputes all.
-#}

{% macro incremental_state_relation() -%}
    {%- set schema = generate_schema_name('staging', none) | trim -%}
    {%- do return(api.Relation.create(
        database=target.database, schema=schema, identifier='dbt_incremental_state'
    )) -%}
{%- endmacro %}


{% macro create_incremental_state_table() -%}
    {%- set state = incremental_state_relation() -%}
    create schema if not exists {{ adapter.quote(state.schema) }};
    create table if not exists {{ state }} (
        model_name text primary key,
        source_ingested_at timestamptz,
        updated_at timestamptz not null default now()
    );
    -- Per-batch tests (macros/batch_tests.sql): the bound of each model's last build.
    alter table {{ state }}
    add column if not exists batch_from timestamptz,
    add column if not exists batch_invocation_id text;
{%- endmacro %}


{#-
    Lower bound on ingested_at for the rows an incremental run must revisit: the recorded
    high-water mark minus the `incremental_lookback` var, '-infinity' when there is none.
    Looked up when the model runs and rendered as a literal, not as a subquery: with a
    subquery PostgreSQL guesses that a third of raw_orders qualifies and scans all of it;
    with a literal it sees from its statistics that only the new batch does and uses the
    ingested_at index, so the run costs in proportion to the batch.
-#}
{% macro watermark_literal(high_water_mark_sql) -%}
    {%- if not execute -%}
        {{ return("'-infinity'::timestamptz") }}
    {%- endif -%}
    {%- set query -%}
        select (
            coalesce(({{ high_water_mark_sql }}), '-infinity'::timestamptz)
            - interval '{{ var("incremental_lookback") }}'
        )::text
    {%- endset -%}
    {%- set value = run_query(query).columns[0].values()[0] -%}
    {{ return("'" ~ value ~ "'::timestamptz") }}
{%- endmacro %}


{#- ... for a mart, whose mark is in the state table. -#}
{% macro incremental_state_watermark() -%}
    {{ return(watermark_literal(
        "select max(source_ingested_at) from " ~ incremental_state_relation()
        ~ " where model_name = '" ~ this.identifier ~ "'"
    )) }}
{%- endmacro %}


{#- ... for a model that keeps its mark in a column of its own table. -#}
{% macro incremental_column_watermark(column) -%}
    {{ return(watermark_literal("select max(" ~ column ~ ") from " ~ this)) }}
{%- endmacro %}


{#- Post-hook: record the ingested_at high-water mark this build incorporated. -#}
{% macro save_incremental_state(watermark_sql) -%}
    insert into {{ incremental_state_relation() }} as state (
        model_name, source_ingested_at, updated_at
    )
    values ('{{ this.identifier }}', ({{ watermark_sql }}), now())
    on conflict (model_name) do update
    set
        source_ingested_at = excluded.source_ingested_at,
        updated_at = excluded.updated_at
{%- endmacro %}


{#- The recorded high-water mark of another model (null when it has never been built). -#}
{% macro incremental_state_of(model_name) -%}
    select source_ingested_at
    from {{ incremental_state_relation() }}
    where model_name = '{{ model_name }}'
{%- endmacro %}


{#-
    Post-hook: ANALYZE the model's table when it has no statistics yet, i.e. right after it
    was (re)created. Autovacuum would get there within minutes, but the next incremental run
    may come sooner and, without statistics, plan full scans instead of the key indexes.
-#}
{% macro analyze_if_new() -%}
    do $analyze$
    begin
        if not exists (
            select from pg_catalog.pg_stats
            where schemaname = '{{ this.schema }}' and tablename = '{{ this.identifier }}'
        ) then
            execute 'analyze {{ this }}';
        end if;
    end
    $analyze$
{%- endmacro %}
