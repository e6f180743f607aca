{{
    config(
        unique_key='order_id',
        indexes=[
            {'columns': ['order_id'], 'unique': True},
            {'columns': ['customer_unique_id']},
            {'columns': ['order_date', 'customer_state']},
            {'columns': ['purchased_at']},
        ],
        pre_hook=[
            "{{ record_change_set(ref('int_orders_latest'), 'order_id') }}",
        ],
    )
}}

with

orders as (

    select * from {{ ref('int_orders_latest') }}
    {% if is_incremental() %}
        where order_id in (select change_set.order_id from {{ change_set() }} as change_set)
    {% endif %}

),

final as (

    select
        order_id,
        customer_unique_id,
        customer_id,
        customer_state,
        customer_city,
        order_status,
        purchased_at,
        purchased_at::date as order_date,
        approved_at,
        delivered_carrier_at,
        delivered_customer_at,
        estimated_delivery_date,
        item_count,
        total_price,
        total_freight,
        (total_price + total_freight)::numeric(14, 2) as order_value,
        total_payment,
        payment_count,
        round(
            extract(epoch from delivered_customer_at - purchased_at) / 86400, 2
        )::numeric(8, 2) as delivery_days,
        delivered_customer_at::date > estimated_delivery_date as is_late
    from orders

)

select * from final
