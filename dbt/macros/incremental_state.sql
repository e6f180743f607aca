{#-
    Incremental bookkeeping: what each model has incorporated, and the keys its last build
    rewrote (its change set), all in small tables of the staging schema.

    The raw boundary is the consumer's own offsets, not a clock. The consumer stores each
    partition's `next_offset` in `{raw}.consumer_offsets` in the same transaction as the rows,
    and writes a partition one transaction at a time in offset order, so every raw row below
    the recorded next_offset of its (topic, epoch, partition) is committed: a gap-free
    watermark. (A topic recreated through `olist offsets reset` gets a new epoch, whose
    partitions a model has never read, so it reads them from offset 0.)
    on-run-start takes one snapshot of those offsets per invocation (`dbt_offset_snapshots`);
    a model that reads raw processes the rows in [its watermark, snapshot) and records the
    snapshot as its new watermark (`dbt_offset_watermarks`).

    Downstream of int_orders_latest every row it rewrote carries the number of the build that
    wrote it (`_build_seq`, from `dbt_build_state.through_seq`); a mart's change set is the
    rows with a number above the one it last incorporated. Every write happens in a pre-hook
    inside the model's own transaction, so it commits or rolls back with the model's rows.
-#}

{% macro state_relation(identifier) -%}
    {%- do return(api.Relation.create(
        database=target.database,
        schema=generate_schema_name('staging', none) | trim,
        identifier=identifier,
    )) -%}
{%- endmacro %}


{#- The keys `model_name`'s last incremental build rewrote (empty after a full build). -#}
{% macro change_set(model_name=none) -%}
    {%- do return(state_relation((model_name or this.identifier) ~ '__change_set')) -%}
{%- endmacro %}


{% macro create_incremental_state_tables() -%}
    {%- set raw_schema = adapter.quote(source('raw', 'raw_orders').schema) -%}
    {%- set snapshots = state_relation('dbt_offset_snapshots') -%}
    {%- set watermarks = state_relation('dbt_offset_watermarks') -%}
    {#- Only when missing: `create schema if not exists` needs CREATE on the database even when
        the schema exists, and the dbt role has none (its schemas are provisioned for it). -#}
    {%- if not adapter.check_schema_exists(target.database, snapshots.schema) %}
    create schema if not exists {{ adapter.quote(snapshots.schema) }};
    {%- endif %}
    -- The clock-based state of earlier versions; nothing reads it any more.
    drop table if exists {{ state_relation('dbt_incremental_state') }};
    create table if not exists {{ state_relation('dbt_build_state') }} (
        model_name text primary key,
        -- int_orders_latest: its build number; a mart: the number it has incorporated.
        through_seq bigint not null,
        full_build boolean not null,
        invocation_id text not null,
        built_at timestamptz not null default now()
    );
    create table if not exists {{ watermarks }} (
        model_name text not null,
        kafka_topic text not null,
        kafka_epoch integer not null,
        kafka_partition integer not null,
        next_offset bigint not null,
        primary key (model_name, kafka_topic, kafka_epoch, kafka_partition)
    );
    create table if not exists {{ snapshots }} (
        invocation_id text not null,
        kafka_topic text not null,
        kafka_epoch integer not null,
        kafka_partition integer not null,
        -- The lowest watermark of any model (what this build's raw tests cover) ...
        from_offset bigint not null,
        -- ... up to the highest offset any consumer group has committed.
        next_offset bigint not null,
        taken_at timestamptz not null default now(),
        primary key (invocation_id, kafka_topic, kafka_epoch, kafka_partition)
    );
    delete from {{ snapshots }} where taken_at < now() - interval '1 day';
    -- Several consumer groups may write one raw schema; (topic, epoch, partition, offset) is
    -- unique across them, so the highest committed next_offset of any group bounds committed
    -- rows. A watermark above the snapshot means the offsets went backwards (a reset that
    -- kept the epoch): that partition is read again from 0.
    insert into {{ snapshots }} (
        invocation_id, kafka_topic, kafka_epoch, kafka_partition, from_offset, next_offset
    )
    select
        '{{ invocation_id }}',
        positions.kafka_topic,
        positions.kafka_epoch,
        positions.kafka_partition,
        case
            when incorporated.next_offset <= positions.next_offset
                then incorporated.next_offset
            else 0
        end,
        positions.next_offset
    from (
        select kafka_topic, kafka_epoch, kafka_partition, max(next_offset) as next_offset
        from {{ raw_schema }}.consumer_offsets
        group by kafka_topic, kafka_epoch, kafka_partition
    ) as positions
    left join (
        select kafka_topic, kafka_epoch, kafka_partition, min(next_offset) as next_offset
        from {{ watermarks }}
        group by kafka_topic, kafka_epoch, kafka_partition
    ) as incorporated
        on
            positions.kafka_topic = incorporated.kafka_topic
            and positions.kafka_epoch = incorporated.kafka_epoch
            and positions.kafka_partition = incorporated.kafka_partition
    on conflict do nothing
{%- endmacro %}


{#- A SQL string literal (Kafka topic names are [a-zA-Z0-9._-], but quote anyway). -#}
{% macro sql_literal(value) -%}
    {{- "'" ~ (value | string | replace("'", "''")) ~ "'" -}}
{%- endmacro %}


{#-
    Predicate on (kafka_topic, kafka_epoch, kafka_partition, kafka_offset) selecting the
    offset ranges [from, to) of `ranges`, rendered as literals: the planner then reads only
    those ranges through raw_orders' unique position index. 'false' when none.
-#}
{% macro offset_ranges_predicate(ranges) -%}
    {%- set terms = [] -%}
    {%- for topic, epoch, partition, from_offset, to_offset in ranges
        if from_offset < to_offset -%}
        {%- do terms.append(
            '(kafka_topic = ' ~ sql_literal(topic) ~ ' and kafka_epoch = ' ~ epoch
            ~ ' and kafka_partition = ' ~ partition ~ ' and kafka_offset >= ' ~ from_offset
            ~ ' and kafka_offset < ' ~ to_offset ~ ')'
        ) -%}
    {%- endfor -%}
    {{- return('(' ~ terms | join(' or ') ~ ')' if terms else 'false') -}}
{%- endmacro %}


{#-
    This invocation's offset snapshot joined with `model_name`'s watermarks: one
    (topic, epoch, partition, from, to) per partition. `from` is 0 for a partition the model never
    read, and for one whose offsets went backwards.
-#}
{% macro offset_ranges(model_name) -%}
    {%- set query -%}
        select
            snapshots.kafka_topic,
            snapshots.kafka_epoch,
            snapshots.kafka_partition,
            case
                when watermarks.next_offset <= snapshots.next_offset
                    then watermarks.next_offset
                else 0
            end,
            snapshots.next_offset
        from {{ state_relation('dbt_offset_snapshots') }} as snapshots
        left join {{ state_relation('dbt_offset_watermarks') }} as watermarks
            on
                watermarks.model_name = {{ sql_literal(model_name) }}
                and snapshots.kafka_topic = watermarks.kafka_topic
                and snapshots.kafka_epoch = watermarks.kafka_epoch
                and snapshots.kafka_partition = watermarks.kafka_partition
        where snapshots.invocation_id = {{ sql_literal(invocation_id) }}
        order by 1, 2, 3
    {%- endset -%}
    {{- return(run_query(query).rows | map('list') | list) -}}
{%- endmacro %}


{#- Part of a pre-hook: the state row of this build. -#}
{% macro save_build_state(through_seq_sql) -%}
    insert into {{ state_relation('dbt_build_state') }} as state (
        model_name, through_seq, full_build, invocation_id, built_at
    )
    values (
        {{ sql_literal(this.identifier) }},
        ({{ through_seq_sql }}),
        {{ not is_incremental() }},
        {{ sql_literal(invocation_id) }},
        now()
    )
    on conflict (model_name) do update
    set
        through_seq = excluded.through_seq,
        full_build = excluded.full_build,
        invocation_id = excluded.invocation_id,
        built_at = excluded.built_at
{%- endmacro %}


{#-
    Part of a pre-hook: fill this model's change-set table with `keys_sql` (incremental
    builds; a full build leaves it empty and tests whole tables), and ANALYZE it so that the
    model's `key in (select ... from change set)` is planned as index lookups.
-#}
{% macro save_change_set(keys_sql) -%}
    {%- set keys = change_set() -%}
    create table if not exists {{ keys }} as {{ keys_sql }} with no data;
    truncate {{ keys }};
    {% if is_incremental() -%}
        insert into {{ keys }} {{ keys_sql }};
        analyze {{ keys }};
    {%- endif %}
{%- endmacro %}


{#-
    Pre-hook of the model that reads raw_orders (int_orders_latest): its change set is the
    orders with an event in [its watermark, this invocation's snapshot); the snapshot becomes
    its watermark, and its build number goes up by one (the `_build_seq` of its rows).
-#}
{% macro record_raw_change_set() -%}
    {#- Resolved before the parse-time return, so dbt records the dependency. -#}
    {%- set raw_orders = source('raw', 'raw_orders') -%}
    {%- if not execute -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set snapshots = state_relation('dbt_offset_snapshots') -%}
    {%- set predicate = offset_ranges_predicate(offset_ranges(this.identifier)) -%}
    {{ save_build_state(
        'select coalesce(max(through_seq), 0) + 1 from '
        ~ state_relation('dbt_build_state') ~ ' where model_name = ' ~ sql_literal(this.identifier)
    ) }};
    insert into {{ state_relation('dbt_offset_watermarks') }} as watermarks (
        model_name, kafka_topic, kafka_epoch, kafka_partition, next_offset
    )
    select
        {{ sql_literal(this.identifier) }}, kafka_topic, kafka_epoch, kafka_partition, next_offset
    from {{ snapshots }}
    where invocation_id = {{ sql_literal(invocation_id) }}
    on conflict (model_name, kafka_topic, kafka_epoch, kafka_partition) do update
    set next_offset = excluded.next_offset;
    {{ save_change_set(
        'select distinct order_id from ' ~ raw_orders ~ ' where ' ~ predicate
    ) }};
    {{ save_replaced_rows() }}
{%- endmacro %}


{#- The rows of `model_name` that its later builds replaced (see save_replaced_rows). -#}
{% macro replaced_rows(model_name) -%}
    {%- do return(state_relation(model_name ~ '__replaced')) -%}
{%- endmacro %}


{#-
    Part of int_orders_latest's pre-hook, after its change set: copy the rows it is about to
    rewrite, tagged with this build's number. A later event can move an order to another
    (day, state) cell or another customer; the marts' change sets take those keys from the
    replaced rows as well as from the new ones, so the old cell and the old customer are
    recomputed too (or deleted, when the order was their only one).
    Rows every downstream model has incorporated are dropped. A full build drops the table:
    its rows get the new build number, so every key is in the marts' next change set (and the
    table's columns may change).
-#}
{% macro save_replaced_rows() -%}
    {%- set replaced = replaced_rows(this.identifier) -%}
    {%- set children = [] -%}
    {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and model.unique_id in node.depends_on.nodes -%}
        {%- do children.append(sql_literal(node.alias)) -%}
    {%- endfor -%}
    {% if is_incremental() -%}
        create table if not exists {{ replaced }} as
        select 0::bigint as _replaced_by_seq, * from {{ this }} with no data;
        {% if children -%}
            delete from {{ replaced }}
            where _replaced_by_seq <= (
                select min(through_seq) from {{ state_relation('dbt_build_state') }}
                where model_name in ({{ children | join(', ') }})
            );
        {%- endif %}
        insert into {{ replaced }}
        select {{ this_build_seq() }}, previous.*
        from {{ this }} as previous
        where previous.order_id in (select change_set.order_id from {{ change_set() }} as change_set)
    {%- else -%}
        drop table if exists {{ replaced }}
    {%- endif %}
{%- endmacro %}


{#- The build number of this model's current build (after its pre-hook), for `_build_seq`. -#}
{% macro this_build_seq() -%}
    (
        select state.through_seq
        from {{ state_relation('dbt_build_state') }} as state
        where state.model_name = {{ sql_literal(this.identifier) }}
    )
{%- endmacro %}


{#-
    Pre-hook of a model downstream of `changed_rows` (int_orders_latest, whose rows carry
    `_build_seq`): its change set is `key_columns` of the rows written by builds after the one
    it last incorporated, up to the build its parents have all incorporated (the lowest
    through_seq among them), so a parent skipped or selected out is caught up next time.
    The keys are taken from those rows both as they are now and as they were before those
    builds replaced them (`<changed_rows>__replaced`), so an order that moved to another key
    takes its old key along; keys left with no row are deleted here, in the model's
    transaction.
-#}
{% macro record_change_set(changed_rows, key_columns) -%}
    {%- if not execute -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set parents = [] -%}
    {%- for unique_id in model.depends_on.nodes if unique_id.startswith('model.') -%}
        {%- do parents.append(sql_literal(graph.nodes[unique_id].alias)) -%}
    {%- endfor -%}
    {%- set query -%}
        select
            (select through_seq from {{ state_relation('dbt_build_state') }}
             where model_name = {{ sql_literal(this.identifier) }}),
            (select min(through_seq) from {{ state_relation('dbt_build_state') }}
             where model_name in ({{ parents | join(', ') }})),
            to_regclass({{ sql_literal(replaced_rows(changed_rows.identifier)) }}) is not null
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[1] is none -%}
        {{ exceptions.raise_compiler_error(
            this.identifier ~ ": no recorded build of its parents; build them first"
        ) }}
    {%- endif -%}
    {%- set since = row[0] if row[0] is not none and is_incremental() else 0 -%}
    {%- set keys_sql -%}
        select distinct {{ key_columns }} from {{ changed_rows }}
        where _build_seq > {{ since }} and _build_seq <= {{ row[1] }}
        {%- if row[2] %}
            -- The same rows as they were before those builds rewrote them: an order that
            -- moved leaves its old key.
            union
            select distinct {{ key_columns }} from {{ replaced_rows(changed_rows.identifier) }}
            where _replaced_by_seq > {{ since }} and _replaced_by_seq <= {{ row[1] }}
        {%- endif %}
    {%- endset -%}
    {{ save_build_state(row[1]) }};
    {{ save_change_set(keys_sql) }}
    {%- if is_incremental() %};
        {#- delete+insert deletes only the keys the model's query returns: a key left with no
            row (a cell or customer whose only order moved away) must go here. -#}
        {%- set unique_key = model.config.unique_key -%}
        {%- set key_list = ([unique_key] if unique_key is string else unique_key) | join(', ') %}
        delete from {{ this }}
        where ({{ key_list }}) in (select {{ key_list }} from {{ change_set() }})
    {%- endif %}
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
