-- Our side of the reconciliation, one row per record the partner is expected to know
-- (docs/partners.md, Reconciliation): oem and roadside bookings the partner has confirmed (a booking
-- still `requested` is not yet expected at the partner), and every warranty claim we filed.

with

partners as (

    -- which partner_id the apps log for each partner: the contracts' partnerId, the one mapping
    select distinct partner, partner_id
    from {{ source('partners', 'partner_contract_datasets') }}

),

bookings as (

    select
        partners.partner,
        bookings.booking_id as internal_id,
        bookings.vin,
        cast(bookings.slot_start as date) as record_date,
        bookings.amount,
        bookings.currency,
        bookings.status,
        bookings.created_at
    from {{ ref('stg_partner_bookings') }} as bookings
    inner join partners on bookings.partner_id = partners.partner_id
    where partners.partner in ('oem', 'roadside')
      and bookings.status in ('confirmed', 'completed', 'cancelled')

),

claims as (

    select
        'warranty' as partner,
        claim_id as internal_id,
        vin,
        repair_date as record_date,
        amount,
        currency,
        status,
        submitted_at as created_at
    from {{ ref('stg_warranty_claims') }}

),

unioned as (

    select * from bookings
    union all
    select * from claims

),

final as (

    select
        partner,
        internal_id,
        vin,
        record_date,
        cast(amount as decimal(18, 4)) as amount,
        currency,
        status,
        {{ internal_status_normalized('partner', 'status') }} as status_normalized,
        created_at
    from unioned

)

select * from final
