{{ config(schema='analytics', materialized='view') }}

-- How fresh the marts are, for readers who may read only the analytics schema (the dashboard's
-- role): the view reads raw and dbt's bookkeeping with its owner's (dbt's) rights and exposes
-- one row of timestamps, nothing of raw's rows.
-- depends_on: {{ ref('fact_orders') }}
-- depends_on: {{ ref('dim_customers') }}
-- depends_on: {{ ref('agg_daily_revenue') }}

with

newest_event as (

    -- One index lookup (raw_orders_ingested_at_idx), whatever the history's size.
    select
        raw_orders.ingested_at,
        raw_orders.event_time
    from {{ source('raw', 'raw_orders') }} as raw_orders
    order by raw_orders.ingested_at desc
    limit 1

),

mart_builds as (

    select
        max(build_state.built_at) as built_at,
        -- Goes up with every build that incorporated new events: a cheap "marts changed?".
        sum(build_state.through_seq) as build_seq
    from {{ state_relation('dbt_build_state') }} as build_state
    where build_state.model_name in ('fact_orders', 'dim_customers', 'agg_daily_revenue')

),

final as (

    select
        newest_event.ingested_at as newest_ingested_at,
        newest_event.event_time as newest_event_time,
        mart_builds.built_at as marts_built_at,
        mart_builds.build_seq as marts_build_seq
    from mart_builds
    left join newest_event on true

)

select * from final
