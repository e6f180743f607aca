-- dim_customers must add up to fact_orders, customer by customer: one row per
-- customer_unique_id of fact_orders, every order counted once, lifetime value = order_value of
-- revenue orders. Per batch, over the customers dim_customers' last build rewrote (its
-- recorded change set); every customer after a full build or on schedule. Returns one row
-- per customer that disagrees.

{%- set customers = batch_scope(ref('dim_customers')) %}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

from_fact as (

    select
        customer_unique_id,
        count(*) as order_count,
        coalesce(sum(order_value) filter (where {{ is_revenue_order('order_status') }}), 0)
            as lifetime_value
    from fact_orders
    where {{ customers }}
    group by customer_unique_id

),

from_dim as (

    select
        customer_unique_id,
        total_orders as order_count,
        lifetime_value
    from dim_customers
    where {{ customers }}

),

final as (

    select
        coalesce(from_fact.customer_unique_id, from_dim.customer_unique_id)
            as customer_unique_id,
        from_fact.order_count as fact_order_count,
        from_dim.order_count as dim_order_count,
        from_fact.lifetime_value as fact_lifetime_value,
        from_dim.lifetime_value as dim_lifetime_value
    from from_fact
    full outer join from_dim
        on from_fact.customer_unique_id = from_dim.customer_unique_id
    where
        from_fact.customer_unique_id is null
        or from_dim.customer_unique_id is null
        or (from_fact.order_count, from_fact.lifetime_value)
        is distinct from (from_dim.order_count, from_dim.lifetime_value)

)

select * from final
