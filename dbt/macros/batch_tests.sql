{#-
    Per-batch data tests.

    An incremental build rewrites only the rows a batch touched, so its data tests check only
    those rows: a row-level or per-key test of untouched rows would re-prove, at a cost in
    proportion to history, what the build that last wrote them already proved. Every data
    test carries `where: __rebuilt_rows__` (dbt_project.yml); `get_where_subquery` replaces
    it, when the test runs, with the predicate of the rows the tested model's last build
    rewrote. After a full build (or a first one), or with var `full_history_tests` (the
    scheduled run), the predicate is `true`: the whole table.

    Each model's pre-hook `save_batch_start` records the lower ingested_at bound of the build
    (the same literal the model filtered on; '-infinity' for a full build) in the state
    table, column `batch_from`. The predicates below are the models' own change sets.
-#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if '__rebuilt_rows__' in where -%}
        {%- set where = where | replace('__rebuilt_rows__', rebuilt_rows(relation.identifier)) -%}
    {%- endif -%}
    {%- if where and where | trim != 'true' -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#-
    Pre-hook: record the lower ingested_at bound this build filters on: the model's watermark
    (from `watermark_column` of its own table, else from the state table) when incremental,
    '-infinity' for a full or first build.
-#}
{% macro save_batch_start(watermark_column=none) -%}
    {%- if not is_incremental() -%}
        {%- set since = "'-infinity'::timestamptz" -%}
    {%- elif watermark_column -%}
        {%- set since = incremental_column_watermark(watermark_column) -%}
    {%- else -%}
        {%- set since = incremental_state_watermark() -%}
    {%- endif -%}
    insert into {{ incremental_state_relation() }} as state (
        model_name, batch_from, batch_invocation_id, updated_at
    )
    values ('{{ this.identifier }}', {{ since }}, '{{ invocation_id }}', now())
    on conflict (model_name) do update
    set
        batch_from = excluded.batch_from,
        batch_invocation_id = excluded.batch_invocation_id,
        updated_at = excluded.updated_at
{%- endmacro %}


{#-
    (lower bound of `model_name`'s last build as a literal or none = everything, whether that
    build ran in this dbt invocation).
-#}
{% macro last_batch(model_name) -%}
    {%- set state = incremental_state_relation() -%}
    {%- if not execute or adapter.get_relation(
        state.database, state.schema, state.identifier) is none -%}
        {{ return((none, false)) }}
    {%- endif -%}
    {#- Through jsonb: a state table from before these columns (a compile ahead of the
        on-run-start hook, e.g. sqlfluff) reads as "test everything". -#}
    {%- set query -%}
        select
            case
                when (to_jsonb(state) ->> 'batch_from')::timestamptz > '-infinity'
                    then to_jsonb(state) ->> 'batch_from'
            end,
            to_jsonb(state) ->> 'batch_invocation_id' = '{{ invocation_id }}'
        from {{ state }} as state
        where model_name = '{{ model_name }}'
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {%- if rows | length == 0 -%}
        {{ return((none, false)) }}
    {%- endif -%}
    {%- set since = "'" ~ rows[0][0] ~ "'::timestamptz" if rows[0][0] is not none else none -%}
    {{ return((since, rows[0][1])) }}
{%- endmacro %}


{% macro full_history_tests() -%}
    {{ return(var('full_history_tests', false) or flags.FULL_REFRESH or not execute) }}
{%- endmacro %}


{% macro int_orders_latest_relation() -%}
    {%- do return(api.Relation.create(
        database=target.database,
        schema=generate_schema_name('staging', none) | trim,
        identifier='int_orders_latest',
    )) -%}
{%- endmacro %}


{#-
    Predicate on `model_name`'s columns selecting the rows its last build rewrote ('true' for
    all). Raw events (and the staging view over them) are scoped to what int_orders_latest
    reads in this run: the bound its build recorded when it already ran in this invocation,
    else its current watermark (the tests of a source run before the models that read it).
-#}
{% macro rebuilt_rows(model_name) -%}
    {%- if full_history_tests() -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set latest = int_orders_latest_relation() -%}
    {%- if model_name in ('raw_orders', 'stg_orders') -%}
        {%- set since, built_now = last_batch('int_orders_latest') -%}
        {%- if not built_now -%}
            {%- set since = none -%}
            {%- if adapter.get_relation(latest.database, latest.schema, latest.identifier) -%}
                {%- set mark = run_query(
                    "select (max(_source_ingested_at) - interval '"
                    ~ var('incremental_lookback') ~ "')::text from " ~ latest
                ).columns[0].values()[0] -%}
                {%- set since = "'" ~ mark ~ "'::timestamptz" if mark is not none else none -%}
            {%- endif -%}
        {%- endif -%}
        {{ return('true' if since is none else 'ingested_at > ' ~ since) }}
    {%- endif -%}
    {%- set since = last_batch(model_name)[0] -%}
    {%- if since is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set changed = 'from ' ~ latest ~ ' where _source_ingested_at > ' ~ since -%}
    {%- if model_name == 'int_orders_latest' -%}
        {{ return('_source_ingested_at > ' ~ since) }}
    {%- elif model_name == 'fact_orders' -%}
        {{ return('order_id in (select order_id ' ~ changed ~ ')') }}
    {%- elif model_name == 'dim_customers' -%}
        {{ return('customer_unique_id in (select customer_unique_id ' ~ changed ~ ')') }}
    {%- elif model_name == 'agg_daily_revenue' -%}
        {{ return(
            '(order_date, customer_state) in (select purchased_at::date, customer_state '
            ~ changed ~ ')'
        ) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(
        "rebuilt_rows: no per-batch scope for '" ~ model_name ~ "'; add one or set where: true"
    ) }}
{%- endmacro %}
