-- One row per partner transaction, its latest version, in the shape the reconciliation compares
-- (docs/partners.md, Reconciliation): oem service orders, warranty claims, roadside dispatches.
-- The version history (every landed version) is read from the sources only for the moments a latest
-- version no longer shows: when an OEM order first became completed, when a warranty claim first appeared.

with

oem_orders as (

    select * from {{ ref('stg_partner_oem_service_orders') }}

),

oem_history as (

    select
        order_id,
        min(case when {{ partner_status_normalized("'oem'", 'status') }} = 'completed' then updated_at end) as completed_at
    from {{ source('partners', 'partner_oem_service_orders') }}
    group by order_id

),

oem as (

    select
        'oem' as partner,
        oem_orders.order_id as partner_txn_id,
        oem_orders.booking_ref as shared_ref,
        oem_orders.vin,
        oem_orders.service_date as txn_date,
        oem_orders.amount,
        oem_orders.currency,
        oem_orders.status,
        oem_orders.created_at,
        -- the order exists at the OEM: the booking is confirmed by the partner
        oem_orders.created_at as confirmed_at,
        oem_history.completed_at,
        oem_orders.updated_at
    from oem_orders
    left join oem_history on oem_orders.order_id = oem_history.order_id

),

warranty_files as (

    select * from {{ ref('stg_partner_warranty_claims') }}

),

warranty_status as (

    select * from {{ ref('stg_partner_warranty_claim_status') }}

),

warranty_history as (

    select partner_claim_id, min(updated_at) as first_version_at
    from {{ source('partners', 'partner_warranty_claims') }}
    group by partner_claim_id

),

warranty as (

    -- The latest version over the file and the status endpoint together: the endpoint carries status and
    -- approved amount (newer when its version is at least the file's); every other column comes from the
    -- file. A claim seen only on the endpoint waits for its file row (it has no ref, vin, date or amount).
    select
        'warranty' as partner,
        files.partner_claim_id as partner_txn_id,
        files.claim_ref as shared_ref,
        files.vin,
        files.repair_date as txn_date,
        files.claimed_amount as amount,
        files.currency,
        case
            when status.record_version >= files.record_version then status.adjudication_status
            else files.adjudication_status
        end as status,
        coalesce(history.first_version_at, files.updated_at) as created_at,
        cast(null as timestamptz) as confirmed_at,
        cast(null as timestamptz) as completed_at,
        greatest(files.updated_at, coalesce(status.updated_at, files.updated_at)) as updated_at
    from warranty_files as files
    left join warranty_status as status on files.partner_claim_id = status.partner_claim_id
    left join warranty_history as history on files.partner_claim_id = history.partner_claim_id

),

roadside as (

    select
        'roadside' as partner,
        dispatch_id as partner_txn_id,
        request_ref as shared_ref,
        vin,
        dispatch_date as txn_date,
        fee_amount as amount,
        currency,
        status,
        first_event_at as created_at,
        assigned_at as confirmed_at,
        completed_at,
        last_event_at as updated_at
    from {{ ref('int_partner_roadside_dispatches') }}

),

unioned as (

    select * from oem
    union all
    select * from warranty
    union all
    select * from roadside

),

final as (

    select
        partner,
        partner_txn_id,
        shared_ref,
        vin,
        txn_date,
        cast(amount as decimal(18, 4)) as amount,
        currency,
        status,
        {{ partner_status_normalized('partner', 'status') }} as status_normalized,
        created_at,
        confirmed_at,
        completed_at,
        updated_at
    from unioned

)

select * from final
