{{
    config(
        unique_key='order_id',
        indexes=[
            {'columns': ['order_id'], 'unique': True},
            {'columns': ['_build_seq']},
        ],
    )
}}

with

-- Referenced more than once: keep it inlined so that only the columns (and rows) each use
-- needs are read; a materialized CTE would parse every event's payload.
events as not materialized (

    select * from {{ ref('stg_orders') }}

),

{% if is_incremental() %}

    -- Orders with an event in this build's offset range (its change set, recorded by the
    -- pre-hook); each is then recomputed from all of its events, old and new.
    changed_orders as (

        select change_set.order_id
        from {{ change_set() }} as change_set

    ),

{% endif %}

-- Only cheap raw columns here: the payload is parsed for the latest event alone.
event_summary as (

    select
        events.order_id,
        max(events.sequence) as latest_sequence,
        count(*) as event_count,
        min(events.event_time) as first_event_at,
        max(events.ingested_at) as last_ingested_at
    from events
    {% if is_incremental() %}
        where events.order_id in (select changed_orders.order_id from changed_orders)
    {% endif %}
    group by events.order_id

),

latest_events as (

    select
        events.*,
        event_summary.event_count,
        event_summary.first_event_at,
        event_summary.last_ingested_at
    from events
    inner join event_summary
        on
            events.order_id = event_summary.order_id
            and events.sequence = event_summary.latest_sequence

),

final as (

    select
        order_id,
        event_id as latest_event_id,
        event_type as latest_event_type,
        sequence as latest_sequence,
        event_time as latest_event_at,
        first_event_at,
        event_count,
        order_status,
        purchased_at,
        approved_at,
        delivered_carrier_at,
        delivered_customer_at,
        estimated_delivery_date,
        customer_id,
        customer_unique_id,
        customer_zip_code_prefix,
        customer_city,
        customer_state,
        item_count,
        total_price,
        total_freight,
        payment_count,
        total_payment,
        last_ingested_at as _source_ingested_at,
        {{ this_build_seq() }} as _build_seq
    from latest_events

)

select * from final
