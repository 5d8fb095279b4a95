-- The current reconciliation breaks, one row per break_id = md5(partner | class | record_id)
-- (docs/partners.md, Reconciliation):
--   duplicate          a second partner transaction for the same shared ref as a matched one, or an
--                      unmatched one with the same (vin, date, amount) as a matched one (on the later one)
--   missing_internal   any other unmatched partner transaction created before the end of our data (one
--                      created later, as a partner's API serves them, waits for the data that would match it)
--   missing_partner    an internal record still unmatched more than 24 h after it was created (by the end
--                      of the data)
--   amount_mismatch    a matched pair whose amounts differ beyond the contract's tolerance
--   status_mismatch    else a matched pair whose normalized statuses differ
-- record_id is the partner transaction id, except for missing_partner (the internal id).

with

transactions as (

    select * from {{ ref('int_partner_transactions') }}

),

internal_records as (

    select * from {{ ref('int_partner_internal_records') }}

),

matches as (

    select * from {{ ref('int_reconciliation_matches') }}

),

unmatched_transactions as (

    select transactions.*
    from transactions
    where not exists (
        select 1 from matches
        where matches.partner = transactions.partner
          and matches.partner_txn_id = transactions.partner_txn_id
    )

),

duplicate_of_ref as (

    -- another transaction with the same shared ref took the exact match
    select unmatched_transactions.partner, unmatched_transactions.partner_txn_id,
           min(matches.partner_txn_id) as duplicate_of
    from unmatched_transactions
    inner join matches
        on unmatched_transactions.partner = matches.partner
        and unmatched_transactions.shared_ref = matches.internal_id
        and matches.match_method = 'exact'
    group by unmatched_transactions.partner, unmatched_transactions.partner_txn_id

),

duplicate_of_values as (

    -- the same vehicle, day and amount as a matched transaction
    select unmatched_transactions.partner, unmatched_transactions.partner_txn_id,
           min(matches.partner_txn_id) as duplicate_of
    from unmatched_transactions
    inner join matches
        on unmatched_transactions.partner = matches.partner
        and unmatched_transactions.vin = matches.vin
        and unmatched_transactions.txn_date = matches.txn_date
        and unmatched_transactions.amount = matches.partner_amount
    group by unmatched_transactions.partner, unmatched_transactions.partner_txn_id

),

partner_side as (

    select
        unmatched_transactions.partner,
        case
            when coalesce(duplicate_of_ref.duplicate_of, duplicate_of_values.duplicate_of) is not null then 'duplicate'
            else 'missing_internal'
        end as break_class,
        unmatched_transactions.partner_txn_id as record_id,
        unmatched_transactions.partner_txn_id,
        cast(null as varchar) as internal_id,
        unmatched_transactions.txn_date as break_date,
        unmatched_transactions.amount as partner_amount,
        cast(null as decimal(18, 4)) as internal_amount,
        unmatched_transactions.amount as amount_at_stake,
        case
            when duplicate_of_ref.duplicate_of is not null
                then 'same ref ' || unmatched_transactions.shared_ref || ' as ' || duplicate_of_ref.duplicate_of
            when duplicate_of_values.duplicate_of is not null
                then 'same vin, date and amount as ' || duplicate_of_values.duplicate_of
            else 'no internal record' || coalesce(' for ref ' || unmatched_transactions.shared_ref, '')
        end as detail
    from unmatched_transactions
    left join duplicate_of_ref
        on unmatched_transactions.partner = duplicate_of_ref.partner
        and unmatched_transactions.partner_txn_id = duplicate_of_ref.partner_txn_id
    left join duplicate_of_values
        on unmatched_transactions.partner = duplicate_of_values.partner
        and unmatched_transactions.partner_txn_id = duplicate_of_values.partner_txn_id
    where coalesce(duplicate_of_ref.duplicate_of, duplicate_of_values.duplicate_of) is not null
        or unmatched_transactions.created_at <= {{ data_end_at() }}

),

internal_side as (

    -- the partner has had a day to send it
    select
        internal_records.partner,
        'missing_partner' as break_class,
        internal_records.internal_id as record_id,
        cast(null as varchar) as partner_txn_id,
        internal_records.internal_id,
        internal_records.record_date as break_date,
        cast(null as decimal(18, 4)) as partner_amount,
        internal_records.amount as internal_amount,
        internal_records.amount as amount_at_stake,
        'no partner record for ' || internal_records.status || ' ' || internal_records.internal_id as detail
    from internal_records
    where not exists (
        select 1 from matches
        where matches.partner = internal_records.partner
          and matches.internal_id = internal_records.internal_id
    )
      and internal_records.created_at < {{ dbt.dateadd('hour', -24, data_end_at()) }}

),

matched_side as (

    select
        partner,
        case when not amount_within_tolerance then 'amount_mismatch' else 'status_mismatch' end as break_class,
        partner_txn_id as record_id,
        partner_txn_id,
        internal_id,
        txn_date as break_date,
        partner_amount,
        internal_amount,
        case when not amount_within_tolerance then abs(amount_difference) else internal_amount end as amount_at_stake,
        case
            when not amount_within_tolerance
                then 'partner ' || cast(partner_amount as varchar) || ' vs ours ' || cast(internal_amount as varchar)
            else 'partner ' || partner_status || ' (' || partner_status_normalized || ') vs ours '
                || internal_status || ' (' || internal_status_normalized || ')'
        end as detail
    from matches
    where not amount_within_tolerance
       or partner_status_normalized <> internal_status_normalized

),

unioned as (

    select * from partner_side
    union all
    select * from internal_side
    union all
    select * from matched_side

),

final as (

    select
        {{ dbt.hash("partner || '|' || break_class || '|' || record_id") }} as break_id,
        partner,
        break_class,
        record_id,
        partner_txn_id,
        internal_id,
        break_date,
        partner_amount,
        internal_amount,
        cast(amount_at_stake as decimal(18, 4)) as amount_at_stake,
        detail
    from unioned

)

select * from final
