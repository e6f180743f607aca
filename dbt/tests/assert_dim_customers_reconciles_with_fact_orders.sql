-- dim_customers must add up to fact_orders: one customer per distinct customer_unique_id,
-- every order counted once, lifetime value = order_value of revenue orders.
-- Returns one row per measure that disagrees.

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

dim_customers as (

    select * from {{ ref('dim_customers') }}

),

from_fact as (

    select
        count(distinct customer_unique_id) as customer_count,
        count(*) as order_count,
        coalesce(sum(order_value) filter (where {{ is_revenue_order('order_status') }}), 0)
            as lifetime_value
    from fact_orders

),

from_dim as (

    select
        count(*) as customer_count,
        coalesce(sum(total_orders), 0) as order_count,
        coalesce(sum(lifetime_value), 0) as lifetime_value
    from dim_customers

),

compared as (

    select
        measures.measure,
        measures.fact_value,
        measures.dim_value
    from from_fact
    cross join from_dim
    cross join lateral (
        values
        ('customer_count', from_fact.customer_count::numeric, from_dim.customer_count::numeric),
        ('order_count', from_fact.order_count, from_dim.order_count),
        ('lifetime_value', from_fact.lifetime_value, from_dim.lifetime_value)
    ) as measures (measure, fact_value, dim_value)

)

select * from compared
where fact_value is distinct from dim_value
