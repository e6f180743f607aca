-- fact_orders holds exactly one row per order present in raw_orders: same count as the
-- distinct order_ids in raw (fact_orders.order_id is tested unique separately).
-- Returns a row when the counts differ.

with

raw_orders as (

    select * from {{ source('raw', 'raw_orders') }}

),

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

raw_count as (

    select count(distinct order_id) as order_count
    from raw_orders

),

fact_count as (

    select count(*) as order_count
    from fact_orders

),

final as (

    select
        raw_count.order_count as raw_order_count,
        fact_count.order_count as fact_order_count
    from raw_count
    cross join fact_count
    where raw_count.order_count != fact_count.order_count

)

select * from final
