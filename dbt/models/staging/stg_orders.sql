-- A single flat select, deliberately without the usual import CTE: PostgreSQL never inlines
-- a view whose query has a WITH clause into the query that reads it, so every column of a
-- CTE-style view is computed for every row scanned. Flat, the view is inlined and the
-- payload is parsed only for the rows and columns a consumer keeps (int_orders_latest parses
-- one event per order, not all of them).
select
    event_id,
    order_id,
    event_type,
    event_time,
    sequence,
    (payload ->> 'schema_version')::integer as schema_version,
    payload #>> '{order,order_status}' as order_status,
    (payload #>> '{order,purchased_at}')::timestamp as purchased_at,
    (payload #>> '{order,approved_at}')::timestamp as approved_at,
    (payload #>> '{order,delivered_carrier_at}')::timestamp as delivered_carrier_at,
    (payload #>> '{order,delivered_customer_at}')::timestamp as delivered_customer_at,
    (payload #>> '{order,estimated_delivery_date}')::date as estimated_delivery_date,
    payload #>> '{order,customer,customer_id}' as customer_id,
    payload #>> '{order,customer,customer_unique_id}' as customer_unique_id,
    payload #>> '{order,customer,zip_code_prefix}' as customer_zip_code_prefix,
    payload #>> '{order,customer,city}' as customer_city,
    payload #>> '{order,customer,state}' as customer_state,
    coalesce(jsonb_array_length(payload #> '{order,items}'), 0) as item_count,
    (
        select coalesce(sum((item.value ->> 'price')::numeric(14, 2)), 0)
        from jsonb_array_elements(raw_orders.payload #> '{order,items}') as item
    )::numeric(14, 2) as total_price,
    (
        select coalesce(sum((item.value ->> 'freight_value')::numeric(14, 2)), 0)
        from jsonb_array_elements(raw_orders.payload #> '{order,items}') as item
    )::numeric(14, 2) as total_freight,
    coalesce(jsonb_array_length(payload #> '{order,payments}'), 0) as payment_count,
    (
        select coalesce(sum((payment.value ->> 'payment_value')::numeric(14, 2)), 0)
        from jsonb_array_elements(raw_orders.payload #> '{order,payments}') as payment
    )::numeric(14, 2) as total_payment,
    coalesce(payload #> '{order,items}', '[]'::jsonb) as items,
    coalesce(payload #> '{order,payments}', '[]'::jsonb) as payments,
    kafka_topic,
    kafka_epoch,
    kafka_partition,
    kafka_offset,
    ingested_at
from {{ source('raw', 'raw_orders') }} as raw_orders
