-- One row per roadside dispatch, from its status events (webhooks arrive out of order: everything is
-- ordered by the partner's occurred_at, never by arrival).

with

events as (

    select * from {{ ref('stg_partner_roadside_dispatch_events') }}

),

ordered as (

    select
        *,
        row_number() over (
            partition by dispatch_id order by occurred_at desc, received_at desc, event_id desc
        ) as recency_rank
    from events

),

latest_event as (

    select dispatch_id, status, event_id as latest_event_id
    from ordered
    where recency_rank = 1

),

latest_fee as (

    -- the fee of the latest event carrying one (completed, or a cancellation fee)
    select dispatch_id, fee_amount, currency
    from ordered
    where fee_amount is not null
    qualify row_number() over (partition by dispatch_id order by recency_rank) = 1

),

dispatches as (

    select
        ----------  ids
        dispatch_id,
        -- the booking the partner refers to; a dispatch keeps one ref, the latest non-null wins
        max_by(request_ref, case when request_ref is not null then occurred_at end) as request_ref,
        max_by(vin, occurred_at) as vin,

        ----------  numerics
        count(*) as event_count,

        ----------  timestamps
        min(occurred_at) as first_event_at,
        max(occurred_at) as last_event_at,
        min(case when status = 'requested' then occurred_at end) as requested_at,
        min(case when status = 'assigned' then occurred_at end) as assigned_at,
        min(case when status = 'arrived' then occurred_at end) as arrived_at,
        min(case when status = 'completed' then occurred_at end) as completed_at,
        min(case when status = 'cancelled' then occurred_at end) as cancelled_at,
        min(received_at) as first_received_at,
        max(received_at) as last_received_at

    from events
    group by dispatch_id

),

final as (

    select
        dispatches.dispatch_id,
        dispatches.request_ref,
        dispatches.vin,
        latest_event.latest_event_id,
        latest_event.status,
        {{ partner_status_normalized("'roadside'", 'latest_event.status') }} as status_normalized,
        latest_fee.currency,
        coalesce(latest_fee.fee_amount, 0) as fee_amount,
        dispatches.event_count,
        cast(dispatches.first_event_at as date) as dispatch_date,
        dispatches.first_event_at,
        dispatches.last_event_at,
        dispatches.requested_at,
        dispatches.assigned_at,
        dispatches.arrived_at,
        dispatches.completed_at,
        dispatches.cancelled_at,
        dispatches.first_received_at,
        dispatches.last_received_at

    from dispatches
    inner join latest_event on dispatches.dispatch_id = latest_event.dispatch_id
    left join latest_fee on dispatches.dispatch_id = latest_fee.dispatch_id

)

select * from final
