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
    create schema if not exists {{ adapter.quote(snapshots.schema) }};
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
    ) }}
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
             where model_name in ({{ parents | join(', ') }}))
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[1] is none -%}
        {{ exceptions.raise_compiler_error(
            this.identifier ~ ": no recorded build of its parents; build them first"
        ) }}
    {%- endif -%}
    {%- set since = row[0] if row[0] is not none and is_incremental() else 0 -%}
    {{ save_build_state(row[1]) }};
    {{ save_change_set(
        'select distinct ' ~ key_columns ~ ' from ' ~ changed_rows
        ~ ' where _build_seq > ' ~ since ~ ' and _build_seq <= ' ~ row[1]
    ) }}
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
