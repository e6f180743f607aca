-- fact_orders holds exactly one row per order present in raw_orders (fact_orders.order_id is
-- tested unique separately): no raw order is missing from it, no row of it lacks raw events.
-- Per batch, over the orders fact_orders' last build rewrote (its recorded change set, read
-- on both sides through their order_id indexes); whole tables after a full build or on
-- schedule. Returns one row per order found on one side only.

{%- set orders = batch_scope(ref('fact_orders')) %}

with

raw_orders as (

    select * from {{ source('raw', 'raw_orders') }}
    where {{ orders }}

),

fact_orders as (

    select * from {{ ref('fact_orders') }}
    where {{ orders }}

),

raw_order_ids as (

    select distinct order_id
    from raw_orders

),

final as (

    select
        coalesce(raw_order_ids.order_id, fact_orders.order_id) as order_id,
        raw_order_ids.order_id is not null as in_raw,
        fact_orders.order_id is not null as in_fact_orders
    from raw_order_ids
    full outer join fact_orders
        on raw_order_ids.order_id = fact_orders.order_id
    where raw_order_ids.order_id is null or fact_orders.order_id is null

)

select * from final
