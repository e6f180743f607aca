-- agg_daily_revenue must add up to fact_orders: every count and sum, over the whole table.
-- Catches a cell the incremental path forgot to recompute (e.g. after a late cancelation).
-- Returns one row per measure that disagrees.

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

agg_daily_revenue as (

    select * from {{ ref('agg_daily_revenue') }}

),

from_fact as (

    select
        count(*) as order_count,
        count(*) filter (where order_status = 'canceled') as canceled_count,
        count(*) filter (where {{ is_revenue_order('order_status') }}) as revenue_order_count,
        coalesce(sum(total_price) filter (where {{ is_revenue_order('order_status') }}), 0)
            as total_revenue,
        coalesce(sum(total_freight) filter (where {{ is_revenue_order('order_status') }}), 0)
            as total_freight,
        coalesce(sum(total_payment) filter (where {{ is_revenue_order('order_status') }}), 0)
            as total_payment,
        coalesce(sum(item_count) filter (where {{ is_revenue_order('order_status') }}), 0)
            as items_sold
    from fact_orders

),

from_agg as (

    select
        coalesce(sum(order_count), 0) as order_count,
        coalesce(sum(canceled_count), 0) as canceled_count,
        coalesce(sum(revenue_order_count), 0) as revenue_order_count,
        coalesce(sum(total_revenue), 0) as total_revenue,
        coalesce(sum(total_freight), 0) as total_freight,
        coalesce(sum(total_payment), 0) as total_payment,
        coalesce(sum(items_sold), 0) as items_sold
    from agg_daily_revenue

),

compared as (

    select
        measures.measure,
        measures.fact_value,
        measures.agg_value
    from from_fact
    cross join from_agg
    cross join lateral (
        values
        ('order_count', from_fact.order_count::numeric, from_agg.order_count::numeric),
        ('canceled_count', from_fact.canceled_count, from_agg.canceled_count),
        ('revenue_order_count', from_fact.revenue_order_count, from_agg.revenue_order_count),
        ('total_revenue', from_fact.total_revenue, from_agg.total_revenue),
        ('total_freight', from_fact.total_freight, from_agg.total_freight),
        ('total_payment', from_fact.total_payment, from_agg.total_payment),
        ('items_sold', from_fact.items_sold, from_agg.items_sold)
    ) as measures (measure, fact_value, agg_value)

)

select * from compared
where fact_value is distinct from agg_value
