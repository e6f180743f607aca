{{
    config(
        unique_key=['order_date', 'customer_state'],
        indexes=[
            {'columns': ['order_date', 'customer_state'], 'unique': True},
        ],
        pre_hook=[
            "{{ record_change_set(
                ref('int_orders_latest'), 'purchased_at::date as order_date, customer_state'
            ) }}",
        ],
    )
}}

-- depends_on: {{ ref('int_orders_latest') }}

with

orders as (

    select * from {{ ref('fact_orders') }}

),

{% if is_incremental() %}

    -- (day, state) cells holding an order that changed since this model's last build (its
    -- change set, recorded by the pre-hook); each cell is recomputed from all of its orders,
    -- so a late cancelation leaves its purchase day.
    changed_cells as (

        select
            change_set.order_date,
            change_set.customer_state
        from {{ change_set() }} as change_set

    ),

    cell_orders as (

        select orders.*
        from orders
        where
            (orders.order_date, orders.customer_state) in (
                select
                    changed_cells.order_date,
                    changed_cells.customer_state
                from changed_cells
            )

    ),

{% else %}

cell_orders as (

    select * from orders

),

{% endif %}

flagged_orders as (

    select
        *,
        {{ is_revenue_order('order_status') }} as is_revenue_order
    from cell_orders

),

final as (

    select
        order_date,
        customer_state,
        count(*) as order_count,
        count(*) filter (where order_status = 'canceled') as canceled_count,
        count(*) filter (where is_revenue_order) as revenue_order_count,
        coalesce(
            sum(total_price) filter (where is_revenue_order), 0
        )::numeric(38, 2) as total_revenue,
        coalesce(
            sum(total_freight) filter (where is_revenue_order), 0
        )::numeric(38, 2) as total_freight,
        coalesce(
            sum(total_payment) filter (where is_revenue_order), 0
        )::numeric(38, 2) as total_payment,
        round(
            sum(total_price) filter (where is_revenue_order)
            / nullif(count(*) filter (where is_revenue_order), 0),
            2
        )::numeric(38, 2) as avg_order_value,
        coalesce(sum(item_count) filter (where is_revenue_order), 0) as items_sold
    from flagged_orders
    group by order_date, customer_state

)

select * from final
