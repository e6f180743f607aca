{{ config(schema='analytics', materialized='view') }}

-- Events and new orders ingested per minute over the last hour, for readers of the analytics
-- schema only (read with the view owner's rights; exposes counts, not raw's rows).
-- Each minute counts at most 10,000 events (`capped` then): a bulk load (the whole history in a
-- minute or two) would otherwise make every dashboard refresh read it all; a live stream stays
-- far below the cap.

with

minutes as (

    select generate_series(
        date_trunc('minute', now()) - interval '59 minutes',
        date_trunc('minute', now()),
        interval '1 minute'
    ) as ingested_minute

),

counted as (

    select
        minutes.ingested_minute,
        capped_sample.events,
        capped_sample.new_orders
    from minutes
    cross join lateral (
        select
            count(*) as events,
            count(*) filter (where minute_events.event_type = 'order_created') as new_orders
        from (
            -- A range scan of raw_orders_ingested_at_idx, stopped at the cap.
            select raw_orders.event_type
            from {{ source('raw', 'raw_orders') }} as raw_orders
            where
                raw_orders.ingested_at >= minutes.ingested_minute
                and raw_orders.ingested_at < minutes.ingested_minute + interval '1 minute'
            limit 10000
        ) as minute_events
    ) as capped_sample

),

final as (

    select
        ingested_minute,
        events,
        new_orders,
        events >= 10000 as capped
    from counted
    where events > 0

)

select * from final
