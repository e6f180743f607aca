{#-
    Per-batch data tests.

    An incremental build rewrites only the rows a batch touched, so its data tests check only
    those rows: a row-level or per-key test of untouched rows would re-prove, at a cost in
    proportion to history, what the build that last wrote them already proved. Every data
    test of this project carries `where: __rebuilt_rows__` (dbt_project.yml);
    `get_where_subquery` replaces it with `batch_scope` of the tested relation, which reads
    the change set the model's own build recorded (macros/incremental_state.sql), so what a
    test checks and what the build rewrote cannot drift apart. After a full build (or a first
    one), with --full-refresh, or with var `full_history_tests` (the scheduled run), the scope
    is `true`: the whole table.
-#}

{% macro get_where_subquery(relation) -%}
    {#- `where` is None for a test that sets none (e.g. a package's own tests). -#}
    {%- set where = config.get('where') or '' -%}
    {%- if '__rebuilt_rows__' in where -%}
        {%- set where = where | replace('__rebuilt_rows__', batch_scope(relation)) -%}
    {%- endif -%}
    {%- if where and where | trim != 'true' -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{% macro full_history_tests() -%}
    {{ return(var('full_history_tests', false) or flags.FULL_REFRESH or not execute) }}
{%- endmacro %}


{#- The model or source node that `relation` is (none for another relation). -#}
{% macro node_of(relation) -%}
    {%- for node in graph.nodes.values() | list + graph.sources.values() | list -%}
        {%- if node.resource_type in ('model', 'source')
            and (node.alias or node.identifier or node.name) == relation.identifier
            and node.schema == relation.schema -%}
            {{ return(node) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}


{#-
    Predicate on `relation`'s columns selecting the rows the current batch rewrote ('true' for
    all of them):
    - an incremental model: its unique_key in the change set its last build recorded ('true'
      when that build was a full one, or the model has never been built);
    - a source or view with Kafka positions (raw_orders, stg_orders): the offset ranges this
      invocation's models read, from its offset snapshot (the tests of a source run before the
      models that read it).
    The predicate uses only the tested model's own key columns, so a reconciliation test can
    apply a mart's scope to another relation with those columns (fact_orders, raw_orders).
-#}
{% macro batch_scope(relation) -%}
    {%- if full_history_tests() -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set node = node_of(relation) -%}
    {%- if node is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- if node.resource_type == 'model' and node.config.materialized == 'incremental' -%}
        {{ return(change_set_scope(relation.identifier, node.config.unique_key)) }}
    {%- elif 'kafka_offset' in node.columns -%}
        {{ return(snapshot_scope()) }}
    {%- endif -%}
    {{ return('true') }}
{%- endmacro %}


{#- `(keys) in (select keys from <model>__change_set)` after an incremental build. -#}
{% macro change_set_scope(model_name, unique_key) -%}
    {%- set state = state_relation('dbt_build_state') -%}
    {%- if adapter.get_relation(state.database, state.schema, state.identifier) is none -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set rows = run_query(
        'select full_build from ' ~ state ~ ' where model_name = ' ~ sql_literal(model_name)
    ).rows -%}
    {%- if rows | length == 0 or rows[0][0] -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set keys = ([unique_key] if unique_key is string else unique_key) | join(', ') -%}
    {{ return('(' ~ keys ~ ') in (select ' ~ keys ~ ' from ' ~ change_set(model_name) ~ ')') }}
{%- endmacro %}


{#- The raw offset ranges of this invocation's snapshot ('true' when it reads from 0). -#}
{% macro snapshot_scope() -%}
    {%- set snapshots = state_relation('dbt_offset_snapshots') -%}
    {%- set ranges = run_query(
        'select kafka_topic, kafka_epoch, kafka_partition, from_offset, next_offset from '
        ~ snapshots ~ ' where invocation_id = ' ~ sql_literal(invocation_id)
        ~ ' order by 1, 2, 3'
    ).rows | map('list') | list -%}
    {%- set read_before = [] -%}
    {%- for range in ranges if range[3] > 0 -%}
        {%- do read_before.append(range) -%}
    {%- endfor -%}
    {%- if not read_before -%}
        {{ return('true') }}
    {%- endif -%}
    {{ return(offset_ranges_predicate(ranges)) }}
{%- endmacro %}
