{{
    config(
        unique_key='customer_unique_id',
        indexes=[
            {'columns': ['customer_unique_id'], 'unique': True},
        ],
        pre_hook=[
            "{{ record_change_set(ref('int_orders_latest'), 'customer_unique_id') }}",
        ],
    )
}}

with

orders as (

    select * from {{ ref('fact_orders') }}

),

-- Read twice (changed customers, zip codes): not materialized, so that each use reads only
-- the rows it needs through the indexes instead of a full copy of the table.
latest_orders as not materialized (

    select * from {{ ref('int_orders_latest') }}

),

{% if is_incremental() %}

    -- Customers with an order that changed since this model's last build (its change set,
    -- recorded by the pre-hook); each is recomputed from all of its orders in fact_orders.
    changed_customers as (

        select change_set.customer_unique_id
        from {{ change_set() }} as change_set

    ),

    customer_orders as (

        select orders.*
        from orders
        where
            orders.customer_unique_id in (
                select changed_customers.customer_unique_id from changed_customers
            )

    ),

{% else %}

customer_orders as (

    select * from orders

),

{% endif %}

ranked_orders as (

    select
        customer_orders.customer_unique_id,
        customer_orders.purchased_at,
        customer_orders.order_status,
        customer_orders.order_value,
        latest_orders.customer_zip_code_prefix,
        customer_orders.customer_city,
        customer_orders.customer_state,
        row_number() over (
            partition by customer_orders.customer_unique_id
            order by customer_orders.purchased_at desc, customer_orders.order_id desc
        ) as recency_rank
    from customer_orders
    inner join latest_orders
        on customer_orders.order_id = latest_orders.order_id

),

customer_totals as (

    select
        customer_unique_id,
        min(purchased_at) as first_order_at,
        max(purchased_at) as last_order_at,
        count(*) as total_orders,
        coalesce(
            sum(order_value) filter (where {{ is_revenue_order('order_status') }}), 0
        )::numeric(38, 2) as lifetime_value
    from ranked_orders
    group by customer_unique_id

),

final as (

    select
        customer_totals.customer_unique_id,
        ranked_orders.customer_zip_code_prefix as zip_code_prefix,
        ranked_orders.customer_city as city,
        ranked_orders.customer_state as state,
        customer_totals.first_order_at,
        customer_totals.last_order_at,
        customer_totals.total_orders,
        customer_totals.lifetime_value
    from customer_totals
    inner join ranked_orders
        on
            customer_totals.customer_unique_id = ranked_orders.customer_unique_id
            and ranked_orders.recency_rank = 1

)

select * from final
