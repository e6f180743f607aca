-- agg_daily_revenue must add up to fact_orders, cell by cell (order date × customer state):
-- every count and sum. Catches a cell the incremental path forgot to recompute (e.g. after a
-- late cancelation). Per batch, over the cells agg_daily_revenue's last build rewrote (its
-- recorded change set); every cell after a full build or on schedule. Returns one row per
-- cell that disagrees.

{%- set cells = batch_scope(ref('agg_daily_revenue')) %}

with

fact_orders as (

    select * from {{ ref('fact_orders') }}

),

agg_daily_revenue as (

    select * from {{ ref('agg_daily_revenue') }}

),

flagged_orders as (

    select
        *,
        {{ is_revenue_order('order_status') }} as is_revenue_order
    from fact_orders
    where {{ cells }}

),

from_fact as (

    select
        order_date,
        customer_state,
        count(*) as order_count,
        count(*) filter (where order_status = 'canceled') as canceled_count,
        count(*) filter (where is_revenue_order) as revenue_order_count,
        coalesce(sum(total_price) filter (where is_revenue_order), 0) as total_revenue,
        coalesce(sum(total_freight) filter (where is_revenue_order), 0) as total_freight,
        coalesce(sum(total_payment) filter (where is_revenue_order), 0) as total_payment,
        coalesce(sum(item_count) filter (where is_revenue_order), 0) as items_sold
    from flagged_orders
    group by order_date, customer_state

),

from_agg as (

    select
        order_date,
        customer_state,
        order_count,
        canceled_count,
        revenue_order_count,
        total_revenue,
        total_freight,
        total_payment,
        items_sold
    from agg_daily_revenue
    where {{ cells }}

),

final as (

    select
        coalesce(from_fact.order_date, from_agg.order_date) as order_date,
        coalesce(from_fact.customer_state, from_agg.customer_state) as customer_state,
        from_fact.order_count as fact_order_count,
        from_agg.order_count as agg_order_count,
        from_fact.total_revenue as fact_total_revenue,
        from_agg.total_revenue as agg_total_revenue
    from from_fact
    full outer join from_agg
        on
            from_fact.order_date = from_agg.order_date
            and from_fact.customer_state = from_agg.customer_state
    where
        from_fact.order_date is null
        or from_agg.order_date is null
        or (
            from_fact.order_count,
            from_fact.canceled_count,
            from_fact.revenue_order_count,
            from_fact.total_revenue,
            from_fact.total_freight,
            from_fact.total_payment,
            from_fact.items_sold
        ) is distinct from (
            from_agg.order_count,
            from_agg.canceled_count,
            from_agg.revenue_order_count,
            from_agg.total_revenue,
            from_agg.total_freight,
            from_agg.total_payment,
            from_agg.items_sold
        )

)

select * from final
